package openai

import (
	"maps"
	"sort"
)

// StoreFile is an attachment as a test sees it.
type StoreFile struct {
	StoreID    string
	FileID     string
	Filename   string
	Status     string // in_progress, completed or failed
	LastError  *FileError
	Attributes map[string]any // values are string, float64 or bool
	Chunks     []string       // the chunk texts file_search searches, once completed
}

// FileError is a vector store file's last_error.
type FileError struct {
	Code    string
	Message string
}

// LiveFiles returns every vector store's attached files (any status), by
// store id, each store's files in attach order. Indexing is settled first,
// as for any request.
func (s *Server) LiveFiles() map[string][]StoreFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked()
	out := make(map[string][]StoreFile, len(s.stores))
	for id, vs := range s.stores {
		out[id] = s.storeFilesLocked(vs)
	}
	return out
}

// StoreFiles returns one store's attached files in attach order; nil if the
// store does not exist.
func (s *Server) StoreFiles(storeID string) []StoreFile {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settleLocked()
	vs := s.stores[storeID]
	if vs == nil {
		return nil
	}
	return s.storeFilesLocked(vs)
}

func (s *Server) storeFilesLocked(vs *vectorStore) []StoreFile {
	sfs := make([]*storeFile, 0, len(vs.files))
	for _, sf := range vs.files {
		sfs = append(sfs, sf)
	}
	sort.Slice(sfs, func(i, j int) bool { return sfs[i].seq < sfs[j].seq })
	out := make([]StoreFile, 0, len(sfs))
	for _, sf := range sfs {
		f := StoreFile{StoreID: vs.id, FileID: sf.fileID, Filename: sf.filename, Status: sf.status,
			Attributes: maps.Clone(sf.attributes)}
		if sf.lastError != nil {
			f.LastError = &FileError{Code: sf.lastError.Code, Message: sf.lastError.Message}
		}
		if sf.status == "completed" {
			for _, c := range sf.chunks {
				f.Chunks = append(f.Chunks, c.text)
			}
		}
		out = append(out, f)
	}
	return out
}

// File is an uploaded file as a test sees it.
type File struct {
	ID       string
	Filename string
	Purpose  string
	Content  []byte
}

// Files returns every uploaded, undeleted file, oldest first.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	fs := make([]*fileObj, 0, len(s.files))
	for id := range s.files {
		if f := s.liveFileLocked(id); f != nil {
			fs = append(fs, f)
		}
	}
	sort.Slice(fs, func(i, j int) bool { return s.seqOf[fs[i].id] < s.seqOf[fs[j].id] })
	out := make([]File, len(fs))
	for i, f := range fs {
		out[i] = File{ID: f.id, Filename: f.filename, Purpose: f.purpose, Content: f.content}
	}
	return out
}

// StoreIDs returns the ids of the existing vector stores, oldest first.
func (s *Server) StoreIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.stores))
	for id := range s.stores {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return s.seqOf[ids[i]] < s.seqOf[ids[j]] })
	return ids
}
