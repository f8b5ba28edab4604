package openai

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

// fileObj is an uploaded file. Its content never changes after upload, so
// it may be read without s.mu once the pointer is obtained.
type fileObj struct {
	id        string
	filename  string
	purpose   string
	createdAt int64
	expiresAt int64 // 0: never
	content   []byte
}

// json renders OpenAI's File object.
func (f *fileObj) json() map[string]any {
	m := map[string]any{
		"id": f.id, "object": "file", "bytes": len(f.content), "created_at": f.createdAt,
		"filename": f.filename, "purpose": f.purpose, "status": "processed", "status_details": nil,
		"expires_at": nil,
	}
	if f.expiresAt != 0 {
		m["expires_at"] = f.expiresAt
	}
	return m
}

// Purposes Files.New accepts (openai-go FilePurpose).
var filePurposes = map[string]bool{
	"assistants": true, "batch": true, "fine-tune": true, "vision": true, "user_data": true, "evals": true,
}

// uploadFile is POST /files, multipart: purpose, file (with its filename),
// optionally expires_after[anchor] and expires_after[seconds].
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		writeAPIError(w, badRequest("", "", "Invalid Content-Type header (%s), expected multipart/form-data.", mt))
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		writeAPIError(w, badRequest("", "", "Could not read the multipart body: %v", err))
		return
	}
	var (
		purpose, filename, anchor, seconds string
		content                            []byte
		gotFile                            bool
	)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			writeAPIError(w, badRequest("", "", "Could not read the multipart body: %v", err))
			return
		}
		name := part.FormName()
		if name == "file" {
			filename = path.Base(part.FileName())
			content, err = io.ReadAll(io.LimitReader(part, s.opts.MaxFileBytes+1))
			if err != nil {
				writeAPIError(w, badRequest("file", "", "Could not read the uploaded file: %v", err))
				return
			}
			if int64(len(content)) > s.opts.MaxFileBytes {
				writeAPIError(w, badRequest("file", "file_too_large",
					"File is too large: the limit is %d bytes.", s.opts.MaxFileBytes))
				return
			}
			gotFile = true
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 4096))
		if err != nil {
			writeAPIError(w, badRequest(name, "", "Could not read form field %q: %v", name, err))
			return
		}
		switch name {
		case "purpose":
			purpose = string(v)
		case "expires_after[anchor]":
			anchor = string(v)
		case "expires_after[seconds]":
			seconds = string(v)
		}
	}
	switch {
	case !gotFile:
		writeAPIError(w, badRequest("file", "", "Missing required parameter: 'file'."))
		return
	case filename == "" || filename == "." || filename == "/":
		writeAPIError(w, badRequest("file", "", "The uploaded file has no filename."))
		return
	case purpose == "":
		writeAPIError(w, badRequest("purpose", "", "Missing required parameter: 'purpose'."))
		return
	case !filePurposes[purpose]:
		writeAPIError(w, badRequest("purpose", "invalid_value",
			"Invalid value: '%s'. Supported values are: 'assistants', 'batch', 'fine-tune', 'vision', 'user_data', and 'evals'.", purpose))
		return
	}
	var ttl int64
	if anchor != "" || seconds != "" {
		n, err := strconv.ParseInt(seconds, 10, 64)
		if anchor != "created_at" || err != nil || n < 3600 || n > 2592000 {
			writeAPIError(w, badRequest("expires_after", "invalid_value",
				"Invalid 'expires_after': anchor must be 'created_at' and seconds between 3600 and 2592000."))
			return
		}
		ttl = n
	}
	now := s.opts.Now().Unix()
	s.mu.Lock()
	id, _ := s.newID("file-")
	f := &fileObj{id: id, filename: filename, purpose: purpose, createdAt: now, content: content}
	if ttl > 0 {
		f.expiresAt = now + ttl
	}
	s.files[id] = f
	s.counters.Uploads++
	out := f.json()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// liveFileLocked returns the file id names, if it exists and has not
// expired; s.mu is held.
func (s *Server) liveFileLocked(id string) *fileObj {
	f := s.files[id]
	if f == nil || (f.expiresAt != 0 && s.opts.Now().Unix() >= f.expiresAt) {
		return nil
	}
	return f
}

func noSuchFile(id string) *apiError {
	return notFound("id", "No such File object: %s", id)
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file_id")
	s.mu.Lock()
	f := s.liveFileLocked(id)
	var out map[string]any
	if f != nil {
		out = f.json()
	}
	s.mu.Unlock()
	if f == nil {
		writeAPIError(w, noSuchFile(id))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// listFiles is GET /files: newest first by default, every file on one page
// unless limit says otherwise (OpenAI's default limit is 10,000).
func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	purpose := r.URL.Query().Get("purpose")
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id, f := range s.files {
		if s.liveFileLocked(id) != nil && (purpose == "" || f.purpose == purpose) {
			ids = append(ids, id)
		}
	}
	page, e := s.paginateLocked(r, ids, s.seqOf, func(id string) any { return s.files[id].json() }, 10000, 10000)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// fileContent is GET /files/{id}/content: the bytes as uploaded.
func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file_id")
	s.mu.Lock()
	f := s.liveFileLocked(id)
	s.mu.Unlock()
	if f == nil {
		writeAPIError(w, noSuchFile(id))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.content)))
	w.Header().Set("Content-Disposition", `attachment; filename="`+strings.ReplaceAll(f.filename, `"`, "")+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, bytes.NewReader(f.content))
}

// deleteFile is DELETE /files/{id}; as on OpenAI, it also removes the file
// from every vector store.
func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("file_id")
	s.mu.Lock()
	f := s.liveFileLocked(id)
	if f != nil {
		delete(s.files, id)
		for _, vs := range s.stores {
			if sf := vs.files[id]; sf != nil {
				s.removeStoreFileLocked(vs, sf)
			}
		}
		s.counters.FileDeletes++
	}
	s.mu.Unlock()
	if f == nil {
		writeAPIError(w, noSuchFile(id))
		return
	}
	s.log.Debug("file deleted", "file_id", id)
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
}
