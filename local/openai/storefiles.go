package openai

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"
)

// removeStoreFileLocked detaches sf from vs; s.mu is held.
func (s *Server) removeStoreFileLocked(vs *vectorStore, sf *storeFile) {
	delete(vs.files, sf.fileID)
	delete(s.pending, sf)
}

type attachReq struct {
	FileID           string          `json:"file_id"`
	Attributes       json.RawMessage `json:"attributes"`
	ChunkingStrategy json.RawMessage `json:"chunking_strategy"`
}

// attachFile is POST /vector_stores/{id}/files.
func (s *Server) attachFile(w http.ResponseWriter, r *http.Request) {
	var req attachReq
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	if req.FileID == "" {
		writeAPIError(w, badRequest("file_id", "", "Missing required parameter: 'file_id'."))
		return
	}
	attrs, e := parseAttributes(req.Attributes, "attributes")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	strategy, e := parseChunkingStrategy(req.ChunkingStrategy)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	out, e := s.attach(r.PathValue("vs_id"), req.FileID, attrs, strategy)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// attach attaches a file to a store and starts its indexing. The file is
// read and chunked without s.mu held (its content never changes); attaching
// a file already in the store answers the existing attachment unchanged.
func (s *Server) attach(storeID, fileID string, attrs map[string]any, cs chunkingStrategy) (map[string]any, *apiError) {
	s.mu.Lock()
	vs, f, existing, e := s.attachTargetsLocked(storeID, fileID)
	if existing != nil {
		out := existing.json()
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	if e != nil {
		return nil, e
	}

	sf := &storeFile{storeID: storeID, fileID: fileID, filename: f.filename, attributes: attrs,
		maxTokens: cs.maxTokens, overlap: cs.overlap, status: "in_progress", textBytes: int64(len(f.content))}
	sf.chunks, sf.parseErr = readForSearch(f, cs)

	s.mu.Lock()
	defer s.mu.Unlock()
	vs, _, existing, e = s.attachTargetsLocked(storeID, fileID)
	if existing != nil {
		return existing.json(), nil
	}
	if e != nil {
		return nil, e
	}
	now := s.opts.Now()
	s.seq++
	sf.seq, vs.attachSeq[fileID] = s.seq, s.seq
	sf.createdAt, sf.readyAt = now.Unix(), now.Add(s.opts.IndexingDelay)
	vs.files[fileID] = sf
	vs.lastActiveAt = now.Unix()
	s.pending[sf] = struct{}{}
	s.counters.Attaches++
	s.log.Debug("vector store file attached", "vector_store_id", storeID, "file_id", fileID, "filename", f.filename)
	return sf.json(), nil
}

// attachTargetsLocked finds the store and the file of an attachment, or the
// attachment itself if it exists; s.mu is held.
func (s *Server) attachTargetsLocked(storeID, fileID string) (*vectorStore, *fileObj, *storeFile, *apiError) {
	s.settleLocked()
	vs := s.stores[storeID]
	if vs == nil {
		return nil, nil, nil, noSuchStore(storeID)
	}
	if sf := vs.files[fileID]; sf != nil {
		return vs, nil, sf, nil
	}
	if s.expiredLocked(vs) {
		return nil, nil, nil, badRequest("", "", "Vector store %s is expired and cannot be modified.", storeID)
	}
	f := s.liveFileLocked(fileID)
	if f == nil {
		return nil, nil, nil, notFound("file_id", "No file found with id '%s'.", fileID)
	}
	return vs, f, nil, nil
}

// storeFileLocked finds an attachment, settled; s.mu is held.
func (s *Server) storeFileLocked(storeID, fileID string) (*vectorStore, *storeFile, *apiError) {
	s.settleLocked()
	vs := s.stores[storeID]
	if vs == nil {
		return nil, nil, noSuchStore(storeID)
	}
	sf := vs.files[fileID]
	if sf == nil {
		return nil, nil, notFound("", "No file found with id '%s' in vector store '%s'.", fileID, storeID)
	}
	return vs, sf, nil
}

// getStoreFile is GET /vector_stores/{id}/files/{file_id}. While the file is
// in_progress it sends openai-poll-after-ms, which the SDK's PollStatus
// honours when called with a zero interval, so polling here takes about the
// indexing delay instead of the SDK's default second.
func (s *Server) getStoreFile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, sf, e := s.storeFileLocked(r.PathValue("vs_id"), r.PathValue("file_id"))
	var out map[string]any
	var wait time.Duration
	if sf != nil {
		out = sf.json()
		wait = 100 * time.Millisecond
		if !s.paused {
			wait = min(wait, sf.readyAt.Sub(s.opts.Now()))
		}
	}
	s.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if out["status"] == "in_progress" {
		ms := max(1, int64(math.Ceil(float64(wait)/float64(time.Millisecond))))
		w.Header().Set("openai-poll-after-ms", strconv.FormatInt(ms, 10))
	}
	writeJSON(w, http.StatusOK, out)
}

// listStoreFiles is GET /vector_stores/{id}/files: newest first, 20 a page
// by default, filter by status.
func (s *Server) listStoreFiles(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("vs_id")
	filter := r.URL.Query().Get("filter")
	switch filter {
	case "", "in_progress", "completed", "failed", "cancelled":
	default:
		writeAPIError(w, badRequest("filter", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'in_progress', 'completed', 'failed', and 'cancelled'.", filter))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked()
	vs := s.stores[id]
	if vs == nil {
		writeAPIError(w, noSuchStore(id))
		return
	}
	var ids []string
	for fid, sf := range vs.files {
		if filter == "" || sf.status == filter {
			ids = append(ids, fid)
		}
	}
	page, e := s.paginateLocked(r, ids, vs.attachSeq, func(fid string) any { return vs.files[fid].json() }, 20, 100)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// updateStoreFile is POST /vector_stores/{id}/files/{file_id}: attributes,
// replaced whole.
func (s *Server) updateStoreFile(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Attributes json.RawMessage `json:"attributes"`
	}
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	if len(req.Attributes) == 0 {
		writeAPIError(w, badRequest("attributes", "", "Missing required parameter: 'attributes'."))
		return
	}
	attrs, e := parseAttributes(req.Attributes, "attributes")
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.mu.Lock()
	vs, sf, e := s.storeFileLocked(r.PathValue("vs_id"), r.PathValue("file_id"))
	var out map[string]any
	if sf != nil {
		sf.attributes = attrs
		vs.lastActiveAt = s.opts.Now().Unix()
		s.counters.AttributeUpdates++
		out = sf.json()
	}
	s.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// detachFile is DELETE /vector_stores/{id}/files/{file_id}; the file stays in
// Files.
func (s *Server) detachFile(w http.ResponseWriter, r *http.Request) {
	fileID := r.PathValue("file_id")
	s.mu.Lock()
	vs, sf, e := s.storeFileLocked(r.PathValue("vs_id"), fileID)
	if sf != nil {
		s.removeStoreFileLocked(vs, sf)
		vs.lastActiveAt = s.opts.Now().Unix()
		s.counters.StoreFileDeletes++
	}
	s.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": fileID, "object": "vector_store.file.deleted", "deleted": true})
}

// storeFileContent is GET /vector_stores/{id}/files/{file_id}/content: the
// parsed text of a completed file, as one text item.
func (s *Server) storeFileContent(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	_, sf, e := s.storeFileLocked(r.PathValue("vs_id"), r.PathValue("file_id"))
	var f *fileObj
	if sf != nil && sf.status == "completed" {
		f = s.files[sf.fileID]
	}
	s.mu.Unlock()
	if e != nil {
		writeAPIError(w, e)
		return
	}
	data := []any{}
	if f != nil {
		data = append(data, map[string]string{"type": "text", "text": string(f.content)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "vector_store.file_content.page", "data": data,
		"has_more": false, "next_page": nil})
}
