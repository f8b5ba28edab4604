package openai

import (
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// storeFile is a file attached to a vector store (OpenAI's vector_store.file;
// its id is the file's id).
type storeFile struct {
	seq        uint64 // attach order
	storeID    string
	fileID     string
	filename   string
	createdAt  int64
	attributes map[string]any // string, float64 or bool values
	maxTokens  int
	overlap    int
	status     string // in_progress, completed, failed
	lastError  *lastError
	readyAt    time.Time
	parseErr   *lastError // why indexing will fail, found when attaching
	chunks     []*chunk   // searchable once completed
	textBytes  int64
	usageBytes int64 // textBytes once completed, 0 before and when failed
}

type lastError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// chunk is one window of a file's text with its retrieval terms.
type chunk struct {
	text   string
	tf     map[string]int
	length int // number of terms
}

func newChunk(text string) *chunk {
	ts := terms(text)
	tf := make(map[string]int, len(ts))
	for _, t := range ts {
		tf[t]++
	}
	return &chunk{text: text, tf: tf, length: len(ts)}
}

// fileSearchExtensions are the file types file_search reads, from OpenAI's
// supported-files table. Others attach but fail with unsupported_file, as
// OpenAI reports them (openai/openai-openapi#300: status failed, last_error
// {"code":"unsupported_file","message":"The file type is not supported."}).
// The binary formats (.pdf, .doc, .docx, .pptx) are accepted here only when
// their bytes are UTF-8 text: the local engine extracts no documents.
var fileSearchExtensions = map[string]bool{
	".c": true, ".cpp": true, ".cs": true, ".css": true, ".doc": true, ".docx": true, ".go": true,
	".html": true, ".java": true, ".js": true, ".json": true, ".md": true, ".pdf": true, ".php": true,
	".pptx": true, ".py": true, ".rb": true, ".sh": true, ".tex": true, ".ts": true, ".txt": true,
}

func (sf *storeFile) json() map[string]any {
	attrs := sf.attributes
	if attrs == nil {
		attrs = map[string]any{}
	}
	m := map[string]any{
		"id": sf.fileID, "object": "vector_store.file", "usage_bytes": sf.usageBytes, "created_at": sf.createdAt,
		"vector_store_id": sf.storeID, "status": sf.status, "last_error": nil, "attributes": attrs,
		"chunking_strategy": map[string]any{"type": "static", "static": map[string]int{
			"max_chunk_size_tokens": sf.maxTokens, "chunk_overlap_tokens": sf.overlap}},
	}
	if sf.lastError != nil {
		m["last_error"] = sf.lastError
	}
	return m
}

// settleLocked finishes the indexing of every attachment whose delay has
// passed, unless indexing is paused; s.mu is held. Indexing is settled
// lazily, whenever state is looked at, so no goroutine outlives a request.
func (s *Server) settleLocked() {
	if s.paused || len(s.pending) == 0 {
		return
	}
	now := s.opts.Now()
	for sf := range s.pending {
		if now.Before(sf.readyAt) {
			continue
		}
		delete(s.pending, sf)
		switch fail := s.takeIndexFailureLocked(sf); {
		case fail != nil:
			sf.status, sf.lastError = "failed", fail
		case sf.parseErr != nil:
			sf.status, sf.lastError = "failed", sf.parseErr
		default:
			sf.status, sf.usageBytes = "completed", sf.textBytes
		}
		s.log.Debug("vector store file indexed", "vector_store_id", sf.storeID, "file_id", sf.fileID,
			"filename", sf.filename, "status", sf.status, "chunks", len(sf.chunks))
	}
}

func (s *Server) takeIndexFailureLocked(sf *storeFile) *lastError {
	for i, f := range s.failNext {
		if f.match == sf.fileID || f.match == sf.filename {
			s.failNext = append(s.failNext[:i], s.failNext[i+1:]...)
			return &lastError{Code: f.code, Message: f.message}
		}
	}
	return nil
}

// readForSearch does what indexing does to a file: it refuses a type
// file_search does not read, or bytes that are not text, and cuts the text
// into cs's token windows. Either chunks or the last_error the indexing will
// end with.
func readForSearch(f *fileObj, cs chunkingStrategy) ([]*chunk, *lastError) {
	switch ext := strings.ToLower(path.Ext(f.filename)); {
	case !fileSearchExtensions[ext]:
		return nil, &lastError{Code: "unsupported_file", Message: "The file type is not supported."}
	case !utf8.Valid(f.content):
		return nil, &lastError{Code: "invalid_file",
			Message: "The file could not be parsed: the local engine reads UTF-8 text only."}
	}
	texts, err := chunkText(string(f.content), cs.maxTokens, cs.overlap)
	if err != nil {
		return nil, &lastError{Code: "server_error", Message: fmt.Sprintf("local engine: chunk %s: %v", f.id, err)}
	}
	chunks := make([]*chunk, len(texts))
	for i, t := range texts {
		chunks[i] = newChunk(t)
	}
	return chunks, nil
}
