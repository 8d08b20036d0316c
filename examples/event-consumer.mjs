// event-consumer.mjs: a consumer of the pricing domain events (CloudEvents 1.0,
// docs/internals/events.md) from an SQS queue, that handles each event once
// although the relay delivers at least once: it remembers the ids it handled.
//
//   node examples/event-consumer.mjs QUEUE_URL SEEN_FILE [MAX_MESSAGES] [SECONDS]
//
// For each message: parse the event; when its id is in SEEN_FILE it is a re-send
// (a relay that died between publishing and marking): delete it and go on.
// Otherwise handle it (here: print {"id","type","subject"} as one JSON line),
// append the id to SEEN_FILE (fsync'd), then delete the message. A crash between
// handling and remembering handles that event again on redelivery, so real
// handlers should be idempotent too, or remember in the same transaction as
// their effect. SEEN_FILE keeps the last CAP ids. Ends after MAX_MESSAGES
// handled (default unlimited) or SECONDS without a message (default 10);
// prints {"handled":N,"duplicates":M} last. AWS settings from the environment
// (AWS_ENDPOINT_URL for local services); SQS client from the AWS SDK v3.
import { SQSClient, ReceiveMessageCommand, DeleteMessageCommand } from "@aws-sdk/client-sqs";
import fs from "node:fs";

const CAP = 100000;
const [queueUrl, seenFile, maxArg, secArg] = process.argv.slice(2);
if (!queueUrl || !seenFile) {
  console.error("usage: event-consumer.mjs QUEUE_URL SEEN_FILE [MAX_MESSAGES] [SECONDS]");
  process.exit(2);
}
const max = maxArg ? Number(maxArg) : Infinity;
const idleMs = (secArg ? Number(secArg) : 10) * 1000;

let order = fs.existsSync(seenFile)
  ? fs.readFileSync(seenFile, "utf8").split("\n").filter(Boolean) : [];
if (order.length > CAP) order = order.slice(order.length - CAP);
const seen = new Set(order);
const fd = fs.openSync(seenFile, "a");

function remember(id) {
  fs.writeSync(fd, id + "\n");
  fs.fsyncSync(fd);
  seen.add(id);
  order.push(id);
  if (order.length > CAP) seen.delete(order.shift());
}

const sqs = new SQSClient({ endpoint: process.env.AWS_ENDPOINT_URL,
  region: process.env.AWS_REGION || "us-east-1" });
let handled = 0, duplicates = 0, lastMessage = Date.now();
while (handled < max && Date.now() - lastMessage < idleMs) {
  const r = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl,
    MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  for (const m of r.Messages || []) {
    lastMessage = Date.now();
    let ev = null;
    try { ev = JSON.parse(m.Body); } catch { ev = null; }
    if (!ev || typeof ev.id !== "string") {
      console.error("not a CloudEvent; left for the queue's dead-letter policy");
      continue;
    }
    if (seen.has(ev.id)) {
      duplicates++;
    } else {
      console.log(JSON.stringify({ id: ev.id, type: ev.type, subject: ev.subject }));
      remember(ev.id);
      handled++;
    }
    await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
  }
}
fs.closeSync(fd);
console.log(JSON.stringify({ handled, duplicates }));
