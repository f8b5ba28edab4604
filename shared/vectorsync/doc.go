// Package vectorsync is the sync stage (DESIGN.md sections 1 and 5): it
// publishes each lesson version's knowledge document (knowledge.md, which
// the enrich stage wrote) into its school's OpenAI vector store as
// lesson-<id>-v<n>.md, with attributes for filtering (Attributes), waits
// until OpenAI has indexed it, and only then retires the previous version's
// file. A removed lesson's files are retired (Retire). The package is the
// only place that speaks to OpenAI's Files and Vector Stores (openai.go).
//
// # Exactly one live file per lesson, whatever crashes
//
// OpenAI offers no idempotency key for uploads or attachments, so the stage
// finds what an earlier attempt made before it makes anything. An attempt
// claims the sync stage of its version (lessonstate.Claim) and then, in
// order:
//
//  1. gets the school's store id from schools/{slug} (creating the store
//     once, see schoolStore);
//  2. takes an inventory of the lesson at OpenAI: the store's files whose
//     attributes name the lesson, and the uploaded files named
//     lesson-<id>-v<k>.md;
//  3. chooses the file of its version to go on with — an attachment
//     (completed, else indexing, else failed), else the upload the stage
//     record names (noted right after the upload), else the oldest upload
//     of that name — and retires every other file of its version;
//  4. uploads knowledge.md only if there is no such file, and notes its id;
//  5. attaches it only if it is not attached (attributes, static chunking
//     from chunk.StoreChunking), and notes that;
//  6. waits, up to IndexTimeout, for the indexing to end: failed or
//     cancelled fails the stage for good with OpenAI's last_error, after
//     retiring the failed file; the deadline passing is retryable;
//  7. checks that it still holds the stage (a Note), takes the inventory
//     again and retires every file of the lesson up to its version but its
//     own, and the previous live file its document names;
//  8. records, in one Firestore transaction (lessonstate.CompleteSync), the
//     live file (vectorStore, a field update), the stage done and the synced
//     announcement in the lesson's outbox, then relays the announcement.
//
// A crash at any point leaves the stage running under its lease; the
// sweeper (or a redelivery after the lease) starts a new attempt, which
// recovers as follows:
//
//   - after the upload, before it was noted: step 3 finds the upload by
//     its name and attaches it;
//   - after it was noted, before the attach: step 3 finds it by the noted
//     id (and by its name);
//   - after the attach, before it was noted, or during the wait: step 3
//     finds the attachment by its attributes and waits on it;
//   - after the indexing, before or during the retirement, before the
//     Firestore write: step 3 finds the completed attachment, nothing is
//     uploaded or attached, and steps 7 and 8 run again (both idempotent);
//   - after the Firestore write, before the relay: the claim answers done,
//     and the announcement waits in the outbox for the next flush.
//
// An SDK retry of an upload whose answer was lost makes a second file of the
// same name within one attempt: step 7 retires it. An attempt that lost its
// lease stops before retiring anything; if a newer version took the stage,
// it retires its own file, which nothing will record.
//
// # Removal
//
// A removed lesson event (lesson-events, kind removed) retires every file of
// the lesson up to the removed version and clears the live-file record; a
// sync that was running when the lesson was removed finds it removed when it
// records its file (lessonstate.ErrLessonRemoved), retires that file and
// marks the stage skipped. A lesson that came back is left to its new sync.
//
// # Usage
//
// Vector-store storage is billed per GB-day of what is stored, a stock, not
// a sum over calls: the cost ledger (Lesson.Usage, whose meters add up)
// would count a file once per sync. So the stage records the live file's
// usage_bytes with it (vectorStore.usageBytes, and the stage's outputs) and
// the store's counts and usage on the school's document (School.Stats), for
// a cost report to multiply by the days they were live.
package vectorsync
