# Stock botocore: the container provider of its default chain (what boto3 and the AWS CLI
# use), reading AWS_CONTAINER_CREDENTIALS_RELATIVE_URI.
import json

import botocore
from botocore.credentials import ContainerProvider

credentials = ContainerProvider().load()
frozen = credentials.get_frozen_credentials()
print(json.dumps({
    "AccessKeyId": frozen.access_key,
    "SecretAccessKey": frozen.secret_key,
    "Token": frozen.token,
    "Expiration": credentials._expiry_time.isoformat() if credentials._expiry_time else None,
    "Version": botocore.__version__,
}))
