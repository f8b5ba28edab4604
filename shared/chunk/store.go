package chunk

// Limits of the vector store's static chunking (DESIGN.md section 5).
const (
	storeMinTokens = 100
	storeMaxTokens = 4096
)

// StoreChunking is the static chunking strategy (max_chunk_size_tokens,
// chunk_overlap_tokens) to attach a knowledge document cut with o to the
// vector store.
//
// The store does not see our sections: it cuts the file's tokens into
// windows of maxTokens, each starting maxTokens-overlapTokens after the one
// before (OpenAI documents nothing smarter, so nothing smarter is assumed).
// Its chunks cannot coincide with ours, whose lengths vary; what can be had
// is that each of ours is whole inside one of its, heading included:
//
//   - A run of L tokens lies whole in some window when L <= overlap+1: the
//     last window starting at or before the run starts less than
//     maxTokens-overlap before it, and so reaches at least overlap+1 tokens
//     into it. A section is at most S = MaxTokens + SectionOverheadTokens,
//     so overlap = S keeps every section whole in at least one store chunk,
//     where its embedding sees the chunk as we cut it.
//   - The store allows overlap up to half of maxTokens, so maxTokens = 2S.
//     A window of 2S tokens then also holds at least one whole section, so
//     every chunk the store retrieves (but one inside the document's header,
//     if that is longer than S) carries a heading for ParseTimeRange.
//
// The price is store chunks twice the size of ours; with the default options
// that is 840 and 420, next to the store's own default of 800 and 400. Only
// a chunk over MaxTokens (code too long to cut) can be split across store
// chunks. Options that Validate accepts give values within the store's
// limits (100..4096, overlap at most half).
func StoreChunking(o Options) (maxTokens, overlapTokens int) {
	section := o.MaxTokens + SectionOverheadTokens
	maxTokens = min(storeMaxTokens, max(storeMinTokens, 2*section))
	return maxTokens, min(section, maxTokens/2)
}
