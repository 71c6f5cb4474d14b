export { type TrustedDirectory, type TrustedDirectoryLabel, trustedDirectory } from "./trustedDirectory.js";
