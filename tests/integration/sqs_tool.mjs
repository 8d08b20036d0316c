// sqs_tool.mjs: an independent SQS/SNS client (the AWS SDK for JavaScript v3,
// installed with fauxqs) for the event tests. Debian's AWS CLI 2.9 speaks the
// old SQS protocol, which fauxqs refuses. Endpoint from AWS_ENDPOINT_URL.
//   create-queue NAME            -> prints the queue URL (NAME ending .fifo: a FIFO queue)
//   create-topic NAME            -> prints the topic ARN
//   subscribe TOPIC_ARN QUEUE_URL  (raw delivery, so the queue holds the event itself)
//   receive QUEUE_URL N SECONDS  -> one JSON line per message: body, type attribute,
//                                   MessageGroupId, MessageDeduplicationId; deletes them
import { SQSClient, CreateQueueCommand, ReceiveMessageCommand, DeleteMessageCommand,
  GetQueueAttributesCommand } from "@aws-sdk/client-sqs";
import { SNSClient, CreateTopicCommand, SubscribeCommand } from "@aws-sdk/client-sns";

const endpoint = process.env.AWS_ENDPOINT_URL;
const cfg = { endpoint, region: process.env.AWS_REGION || "us-east-1",
  credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID || "x",
    secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY || "x" } };
const sqs = new SQSClient(cfg);
const sns = new SNSClient(cfg);
const [cmd, a, b, c] = process.argv.slice(2);

if (cmd === "create-queue") {
  const fifo = a.endsWith(".fifo");
  const r = await sqs.send(new CreateQueueCommand({ QueueName: a,
    Attributes: fifo ? { FifoQueue: "true" } : {} }));
  console.log(r.QueueUrl);
} else if (cmd === "create-topic") {
  const r = await sns.send(new CreateTopicCommand({ Name: a }));
  console.log(r.TopicArn);
} else if (cmd === "subscribe") {
  const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: b,
    AttributeNames: ["QueueArn"] }));
  await sns.send(new SubscribeCommand({ TopicArn: a, Protocol: "sqs",
    Endpoint: attrs.Attributes.QueueArn, Attributes: { RawMessageDelivery: "true" } }));
  console.log("ok");
} else if (cmd === "receive") {
  const want = Number(b), until = Date.now() + Number(c) * 1000;
  let got = 0;
  while (got < want && Date.now() < until) {
    const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: a, MaxNumberOfMessages: 10,
      WaitTimeSeconds: 1, MessageAttributeNames: ["All"],
      MessageSystemAttributeNames: ["All"], AttributeNames: ["All"] }));
    for (const m of r.Messages || []) {
      const at = m.MessageAttributes || {};
      console.log(JSON.stringify({ body: m.Body,
        type: at.type ? at.type.StringValue : null,
        groupId: (m.Attributes || {}).MessageGroupId || null,
        dedupId: (m.Attributes || {}).MessageDeduplicationId || null }));
      await sqs.send(new DeleteMessageCommand({ QueueUrl: a, ReceiptHandle: m.ReceiptHandle }));
      got++;
    }
  }
} else {
  console.error("usage: sqs_tool.mjs create-queue NAME | create-topic NAME | " +
    "subscribe TOPIC QUEUE_URL | receive QUEUE_URL N SECONDS");
  process.exit(2);
}
