// Stock AWS SDK for Go v2 (Debian's golang-github-aws-aws-sdk-go-v2-dev): the default
// config's credential chain, which reads AWS_CONTAINER_CREDENTIALS_RELATIVE_URI.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	credentials, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]string{
		"AccessKeyId":     credentials.AccessKeyID,
		"SecretAccessKey": credentials.SecretAccessKey,
		"Token":           credentials.SessionToken,
		"Expiration":      credentials.Expires.UTC().Format(time.RFC3339),
		"Version":         aws.SDKVersion,
	})
	fmt.Println(string(out))
}
