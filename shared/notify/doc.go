// Package notify tells people what the pipeline did (DESIGN.md section 1,
// step 6): a digest per detection run and an immediate alert for a lesson
// that failed for good or a message that was dead-lettered, over Slack
// (incoming webhook, Block Kit) and e-mail (SMTP), or into the log when
// neither is configured.
//
// # Inputs
//
// The notifier reads lesson-events (synced, failed, removed) and every
// dead-letter topic. Decode tells the two apart by the attributes Pub/Sub
// adds when it dead-letters (CloudPubSubDeadLetterSource*), or by a source
// topic other than lesson-events; a dead letter's data may be anything.
//
// # When a run's digest goes out
//
// A detection run marks every lesson it creates, changes, brings back or
// removes with its id (lastRunId). Each lesson-events message of a run asks
// whether the run has settled, with one query on lastRunId (a single-field
// index) that stops at the first lesson still in flight. A lesson has
// settled when it was removed, when a step of its current version failed for
// good, when its sync is done or skipped, or when its media is not ready
// (awaiting or none: detection sent it nowhere, so nothing of this run will
// move it; it is reported, not waited for). The first event that finds every
// lesson settled sends the digest; the digest's idempotency record makes it
// the only one.
//
// A run that changed no lesson sends no digest. A lesson that never settles
// is failed by the sweeper when it runs out of attempts, which publishes a
// failed event, which asks again. Detection publishes while it walks, so
// every lesson of a run may settle (removals settle at once) before the run
// records its end; more lessons could still join it. Then the event is
// answered with a retryable error and Pub/Sub asks again after its backoff,
// until the run's record says it finished, or until RunWait after its start
// (a detector that crashed never records an end: the digest says so).
//
// # Exactly once toward people
//
// Every notification has a deterministic key — the run id for a digest;
// lesson, version and stage for a failure; source subscription and message
// id for a dead letter — and a record in the notifications collection.
// A delivery claims the record in a transaction before sending (with a
// lease, so a delivery that crashed between claim and send leaves it to the
// next one once the lease ends), records each channel's outcome as soon as
// the channel answers, and the record says sent when every channel has. A
// redelivery of a sent notification sends nothing; concurrent deliveries of
// one see a live lease and are asked to come back (a retryable error), by
// which time it is sent. A channel that refuses for good (Slack's
// invalid_payload, an SMTP 5xx) is recorded failed with the reason and never
// tried again. The window left open is a crash after a channel accepted and
// before its outcome is recorded: the next delivery sends on that channel
// again. E-mail carries a Message-ID derived from the key, so mail systems
// that fold duplicates by Message-ID show it once; a Slack webhook has no
// such key, so a second Slack message is possible there — a duplicate alarm
// rather than a lost one.
package notify
