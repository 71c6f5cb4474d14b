# Stock aws-sdk-core (Debian's ruby-aws-sdk-core): Aws::ECSCredentials reads
# AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and asks 169.254.170.2, with no token.
require "aws-sdk-core"
require "json"

provider = Aws::ECSCredentials.new(retries: 0)
credentials = provider.credentials
puts JSON.generate(
  "AccessKeyId" => credentials.access_key_id,
  "SecretAccessKey" => credentials.secret_access_key,
  "Token" => credentials.session_token,
  "Expiration" => provider.expiration&.utc&.iso8601,
  "Version" => Aws::CORE_GEM_VERSION,
)
