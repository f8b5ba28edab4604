// Package chunk cuts a lesson into retrieval chunks (chunks.json) and renders
// its knowledge document (knowledge.md), the file the sync stage uploads to
// the school's vector store (DESIGN.md sections 1 and 5).
//
// Tokens are counted with the embedding model's own encoding (Tokenizer,
// cl100k_base for text-embedding-3-*), so a chunk's size is what the model
// and the vector store see.
//
// # What a chunk is
//
// A chunk's Text is its spoken words, joined by single spaces (each word's
// whitespace collapsed; words with no text are left out), then, after a
// blank line, the visual elements rendered in it, separated by blank lines:
// a "[Diapositiva: title]" line (Código, Diagrama, Demostración, Concepto
// for the other kinds) followed by the element's text, description and
// fenced code (carriage returns made line breaks). Tokens is the token count of the whole Text, and no Text is
// over Options.MaxTokens, with one exception: code is never cut, so an
// element whose code alone is longer is a chunk by itself. (An element's
// prose too long for one chunk is cut at lines, then spaces, into pieces
// under its header; a transcript word too long to fit beside its overlap is
// an error, since no speech has one.)
//
// # Where chunks are cut
//
// Words are grouped into sentences: a sentence ends at a word whose last
// character (closing quotes and brackets aside) is . ? ! or …, at a
// paragraph end of the transcript, and where the next word is another
// speaker's. A chunk grows sentence by sentence while it fits. When the next
// sentence does not fit, the chunk ends at its strongest boundary that
// leaves it at least half full: a speaker change before a paragraph end
// before a sentence end, the latest of equals; failing that, at its last
// sentence; and what is left at the lesson's end, if it fits, is one chunk.
// So a new speaker starts a new chunk unless that would leave a chunk under
// half full, and a paragraph is kept whole when it can be. A
// sentence is cut between words only when it does not fit in a chunk by
// itself (with its overlap); a word is never cut.
//
// # Overlap
//
// Every spoken chunk but the first begins with the overlap of the spoken
// chunk before it: the longest run of whole words ending that chunk's
// spoken text whose text, tokenized on its own, is at most
// Options.OverlapTokens tokens (none if its last word alone is longer). The
// rest of the chunk, its own words, follows the previous chunk's words in
// the transcript with nothing left out. So dropping each chunk's overlap
// and concatenating the spoken texts gives back the transcript. The overlap
// is carried across speaker changes too: an answer's chunk keeps the end of
// the question.
//
// # Visual elements
//
// An element is anchored at the first word still being spoken when it
// appears (whose end is after the element's start; after the last word if
// none). Its text is rendered once, in the chunk whose own words include
// its anchor, or in the last chunk for elements shown after the last word:
// a slide on screen for ten minutes is not repeated in five chunks. If it
// does not fit there beside the overlap and its sentence, it goes with the
// other elements of that sentence into chunks of elements alone, packed in
// order up to MaxTokens. A lesson without speech is all such chunks. A
// chunk's Visuals lists every element on screen during its span (a slide
// shown for ten minutes appears in the Visuals of each chunk it overlaps)
// and every element rendered in it, in order of appearance.
//
// # Times
//
// A spoken chunk spans from its first word's start to the latest end of its
// words (overlap included), widened back to the start of each element
// rendered in it, and forward to the end of one that leaves the screen
// before the next word after the chunk is spoken (shown in no later chunk),
// and never ending before the spoken chunk before it (which only words
// overlapping in time could make it do).
// A chunk of elements alone spans its elements' times. Chunks are ordered
// by start; the ends of spoken chunks never decrease; every word lies in
// the span of each chunk holding it, so the spoken chunks together cover the
// lesson from its first word to its last, every gap between them silence.
package chunk
