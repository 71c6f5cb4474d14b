<?php
// Stock AsyncAws (Debian's php-async-aws-core, php-async-aws-sqs): the default credential
// chain, as Symfony Messenger's SQS transport builds it, then one SQS SendMessage signed
// with what the chain found. No credcache code on this side. Prints the set as JSON (the
// test runner compares it, and never shows it).
require 'AsyncAws/Sqs/autoload.php';

use AsyncAws\Core\Configuration;
use AsyncAws\Core\Credentials\ChainProvider;
use AsyncAws\Core\Credentials\ContainerProvider;
use AsyncAws\Core\Credentials\InstanceProvider;
use AsyncAws\Sqs\SqsClient;

// The tests raise the providers' 1 s timeout (a constructor argument of the stock classes)
// so that a loaded machine cannot fail a run or turn one process into an extra fetch; same
// order as the default chain, whose first three providers find nothing in this environment.
$timeout = getenv('ASYNC_AWS_PROVIDER_TIMEOUT');
$chain = $timeout === false
    ? ChainProvider::createDefaultChain()
    : new ChainProvider([new ContainerProvider(null, null, (float) $timeout), new InstanceProvider(null, null, (float) $timeout)]);
$credentials = $chain->getCredentials(Configuration::create([]));
if ($credentials === null) {
    fwrite(STDERR, "no credentials\n");
    exit(1);
}
$sent = null;
$endpoint = getenv('SQS_ENDPOINT');
if ($endpoint !== false) {
    $sqs = new SqsClient(['region' => 'us-east-1', 'endpoint' => $endpoint]);
    $sent = $sqs->sendMessage(['QueueUrl' => $endpoint . '/123456789012/jobs', 'MessageBody' => 'hello'])->getMessageId();
}
echo json_encode([
    'AccessKeyId' => $credentials->getAccessKeyId(),
    'SecretAccessKey' => $credentials->getSecretKey(),
    'Token' => $credentials->getSessionToken(),
    'Expiration' => $credentials->getExpireDate() ? $credentials->getExpireDate()->format(DATE_ATOM) : null,
    'MessageId' => $sent,
]), "\n";
