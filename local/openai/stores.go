package openai

import (
	"encoding/json"
	"net/http"
)

// vectorStore is a vector store and its attached files.
type vectorStore struct {
	id           string
	name         string
	description  string
	metadata     map[string]string
	createdAt    int64
	lastActiveAt int64
	expiresDays  int64 // expires_after.days; 0: never
	files        map[string]*storeFile
	attachSeq    map[string]uint64 // file id -> order of its latest attachment, kept after detaching, for list cursors
}

func (vs *vectorStore) expiresAt() int64 {
	if vs.expiresDays == 0 {
		return 0
	}
	return vs.lastActiveAt + vs.expiresDays*86400
}

// expiredLocked reports whether vs has passed its expiry; s.mu is held.
func (s *Server) expiredLocked(vs *vectorStore) bool {
	at := vs.expiresAt()
	return at != 0 && s.opts.Now().Unix() >= at
}

// storeJSONLocked renders OpenAI's VectorStore object, with file counts and
// usage derived from the attachments as they stand; s.mu is held and the
// store's files settled.
func (s *Server) storeJSONLocked(vs *vectorStore) map[string]any {
	counts := map[string]int{"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
	var usage int64
	for _, sf := range vs.files {
		counts[sf.status]++
		usage += sf.usageBytes
	}
	status := "completed"
	switch {
	case s.expiredLocked(vs):
		status = "expired"
	case counts["in_progress"] > 0:
		status = "in_progress"
	}
	m := map[string]any{
		"id": vs.id, "object": "vector_store", "created_at": vs.createdAt, "name": vs.name,
		"description": nil, "usage_bytes": usage,
		"file_counts": map[string]int{
			"in_progress": counts["in_progress"], "completed": counts["completed"], "failed": counts["failed"],
			"cancelled": counts["cancelled"], "total": len(vs.files),
		},
		"status": status, "expires_after": nil, "expires_at": nil, "last_active_at": vs.lastActiveAt,
		"metadata": orEmpty(vs.metadata),
	}
	if vs.description != "" {
		m["description"] = vs.description
	}
	if vs.expiresDays != 0 {
		m["expires_after"] = map[string]any{"anchor": "last_active_at", "days": vs.expiresDays}
		m["expires_at"] = vs.expiresAt()
	}
	return m
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

type createStoreReq struct {
	Name             *string           `json:"name"`
	Description      *string           `json:"description"`
	Metadata         map[string]string `json:"metadata"`
	ExpiresAfter     json.RawMessage   `json:"expires_after"`
	ChunkingStrategy json.RawMessage   `json:"chunking_strategy"`
	FileIDs          []string          `json:"file_ids"`
}

// createStore is POST /vector_stores; file_ids, when given, are attached
// with chunking_strategy as by POST /vector_stores/{id}/files.
func (s *Server) createStore(w http.ResponseWriter, r *http.Request) {
	var req createStoreReq
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	if e := validateMetadata(req.Metadata); e != nil {
		writeAPIError(w, e)
		return
	}
	days, _, e := validateExpiresAfter(req.ExpiresAfter)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	strategy, e := parseChunkingStrategy(req.ChunkingStrategy)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if len(req.FileIDs) > 500 {
		writeAPIError(w, badRequest("file_ids", "array_above_max_length",
			"Invalid 'file_ids': array too long. Expected an array with maximum length 500, but got an array with length %d instead.", len(req.FileIDs)))
		return
	}
	now := s.opts.Now().Unix()
	s.mu.Lock()
	for _, fid := range req.FileIDs {
		if s.liveFileLocked(fid) == nil {
			s.mu.Unlock()
			writeAPIError(w, badRequest("file_ids", "", "No file found with id '%s'.", fid))
			return
		}
	}
	id, _ := s.newID("vs_")
	vs := &vectorStore{id: id, metadata: req.Metadata, createdAt: now, lastActiveAt: now, expiresDays: days,
		files: map[string]*storeFile{}, attachSeq: map[string]uint64{}}
	if req.Name != nil {
		vs.name = *req.Name
	}
	if req.Description != nil {
		vs.description = *req.Description
	}
	s.stores[id] = vs
	s.counters.StoresCreated++
	s.mu.Unlock()

	for _, fid := range req.FileIDs {
		if _, e := s.attach(id, fid, nil, strategy); e != nil {
			writeAPIError(w, e)
			return
		}
	}
	s.mu.Lock()
	s.settleLocked()
	out := s.storeJSONLocked(vs)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func noSuchStore(id string) *apiError {
	return notFound("", "No vector store found with id '%s'.", id)
}

func (s *Server) getStore(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("vs_id")
	s.mu.Lock()
	s.settleLocked()
	vs := s.stores[id]
	var out map[string]any
	if vs != nil {
		out = s.storeJSONLocked(vs)
	}
	s.mu.Unlock()
	if vs == nil {
		writeAPIError(w, noSuchStore(id))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// listStores is GET /vector_stores: newest first, 20 a page by default.
func (s *Server) listStores(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked()
	ids := make([]string, 0, len(s.stores))
	for id := range s.stores {
		ids = append(ids, id)
	}
	page, e := s.paginateLocked(r, ids, s.seqOf, func(id string) any { return s.storeJSONLocked(s.stores[id]) }, 20, 100)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

type updateStoreReq struct {
	Name         *string           `json:"name"`
	Metadata     map[string]string `json:"metadata"`
	ExpiresAfter json.RawMessage   `json:"expires_after"`
}

// updateStore is POST /vector_stores/{id}: name, metadata (replaced whole)
// and expires_after (null removes it).
func (s *Server) updateStore(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("vs_id")
	var req updateStoreReq
	if e := decodeJSON(r, &req); e != nil {
		writeAPIError(w, e)
		return
	}
	if e := validateMetadata(req.Metadata); e != nil {
		writeAPIError(w, e)
		return
	}
	days, daysSet, e := validateExpiresAfter(req.ExpiresAfter)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	s.mu.Lock()
	s.settleLocked()
	vs := s.stores[id]
	var out map[string]any
	if vs != nil {
		if req.Name != nil {
			vs.name = *req.Name
		}
		if req.Metadata != nil {
			vs.metadata = req.Metadata
		}
		if daysSet {
			vs.expiresDays = days
		}
		vs.lastActiveAt = s.opts.Now().Unix()
		out = s.storeJSONLocked(vs)
	}
	s.mu.Unlock()
	if vs == nil {
		writeAPIError(w, noSuchStore(id))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// deleteStore is DELETE /vector_stores/{id}; its files stay in Files.
func (s *Server) deleteStore(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("vs_id")
	s.mu.Lock()
	vs := s.stores[id]
	if vs != nil {
		for _, sf := range vs.files {
			s.removeStoreFileLocked(vs, sf)
		}
		delete(s.stores, id)
		s.counters.StoresDeleted++
	}
	s.mu.Unlock()
	if vs == nil {
		writeAPIError(w, noSuchStore(id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "vector_store.deleted", "deleted": true})
}
