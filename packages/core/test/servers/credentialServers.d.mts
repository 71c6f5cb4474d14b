export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
}
export interface ContainerServer {
  url: string;
  port: number;
  state: {
    token: string | undefined;
    requests: Array<{ path: string; authorization: string | undefined }>;
    issued: IssuedCredentials[];
  };
  close(): Promise<void>;
}
export function startContainerServer(options?: { host?: string; token?: string }): Promise<ContainerServer>;
export interface StsStub {
  url: string;
  calls: Array<Record<string, string>>;
  issued: Array<IssuedCredentials & { params: Record<string, string> }>;
  paramsOf(accessKeyId: string): Record<string, string> | undefined;
  close(): Promise<void>;
}
export function startStsStub(): Promise<StsStub>;
