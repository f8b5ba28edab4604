package vectorsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/coursekb/pipeline/shared/failure"
)

// This file is the adapter around github.com/openai/openai-go/v3: the SDK's
// types stay here, and the stage speaks in the small types below.

// OpenAI is the part of the OpenAI API the sync stage uses: Files and Vector
// Stores. It is safe for concurrent use.
type OpenAI struct {
	c openai.Client
}

// NewOpenAI returns a client configured by c.
func NewOpenAI(c OpenAIConfig) (*OpenAI, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("openai client: %w", err)
	}
	return &OpenAI{c: openai.NewClient(ClientOptions(c)...)}, nil
}

// ClientOptions are the SDK options c stands for. Every setting is given
// explicitly, so the SDK's own reading of the environment changes nothing.
func ClientOptions(c OpenAIConfig) []option.RequestOption {
	opts := []option.RequestOption{
		option.WithAPIKey(c.APIKey),
		option.WithMaxRetries(c.MaxRetries),
		option.WithRequestTimeout(c.RequestTimeout),
	}
	if c.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(c.BaseURL))
	}
	return opts
}

// RemoteFile is an uploaded file (OpenAI's File object).
type RemoteFile struct {
	ID        string
	Filename  string
	Bytes     int64
	CreatedAt int64
}

// StoreFile is a file attached to a vector store.
type StoreFile struct {
	FileID     string
	Status     string // in_progress, completed, failed, cancelled
	LastError  *IndexError
	UsageBytes int64
	CreatedAt  int64
	// Attributes' values are string, float64 or bool.
	Attributes map[string]any
}

// Statuses of a vector store file.
const (
	StatusInProgress = "in_progress"
	StatusCompleted  = "completed"
	StatusFailed     = "failed"
	StatusCancelled  = "cancelled"
)

// IndexError is a vector store file's last_error.
type IndexError struct {
	Code    string
	Message string
}

func (e *IndexError) String() string {
	if e == nil {
		return "no last_error"
	}
	return e.Code + ": " + e.Message
}

// VectorStore is a vector store as listed.
type VectorStore struct {
	ID         string
	Name       string
	Metadata   map[string]string
	CreatedAt  int64
	UsageBytes int64
	Completed  int64
	InProgress int64
	Failed     int64
	Total      int64
}

// ErrNotFound marks an answer 404: the file, store or attachment does not
// exist (any more).
var ErrNotFound = errors.New("not found at OpenAI")

// apiErr maps an SDK error: 404 wraps ErrNotFound; 400, 413 and 422 (the
// request itself is wrong: retrying sends it wrong again) are permanent;
// everything else — 401/403 included, which a fixed key or grant cures
// without touching the lesson — stays retryable. The message names OpenAI's
// code and message, which the SDK's own Error() leaves out.
func apiErr(what string, err error) error {
	var e *openai.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("openai: %s: %w", what, err)
	}
	msg := fmt.Sprintf("openai: %s: %d", what, e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	switch e.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%s: %w", msg, ErrNotFound)
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return &failure.Permanent{Err: fmt.Errorf("%s: %w", msg, err)}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// Upload uploads content as filename for file_search (purpose assistants).
// The SDK retries a lost answer, which can make a second file: the stage
// deletes any such duplicate by name.
func (o *OpenAI) Upload(ctx context.Context, filename string, content []byte) (RemoteFile, error) {
	f, err := o.c.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(content), filename, "text/markdown"),
		Purpose: openai.FilePurposeAssistants,
	})
	if err != nil {
		return RemoteFile{}, apiErr("upload "+filename, err)
	}
	return RemoteFile{ID: f.ID, Filename: f.Filename, Bytes: f.Bytes, CreatedAt: f.CreatedAt}, nil
}

// Files returns the files of purpose assistants whose filename keep
// accepts, oldest first.
func (o *OpenAI) Files(ctx context.Context, keep func(filename string) bool) ([]RemoteFile, error) {
	it := o.c.Files.ListAutoPaging(ctx, openai.FileListParams{
		Purpose: openai.String(string(openai.FilePurposeAssistants)),
		Order:   openai.FileListParamsOrderAsc,
	})
	var out []RemoteFile
	for it.Next() {
		f := it.Current()
		if keep(f.Filename) {
			out = append(out, RemoteFile{ID: f.ID, Filename: f.Filename, Bytes: f.Bytes, CreatedAt: f.CreatedAt})
		}
	}
	if err := it.Err(); err != nil {
		return nil, apiErr("list files", err)
	}
	return out, nil
}

// DeleteFile deletes a file, which also removes it from every vector store.
// A file already gone is not an error.
func (o *OpenAI) DeleteFile(ctx context.Context, fileID string) error {
	_, err := o.c.Files.Delete(ctx, fileID)
	if err == nil {
		return nil
	}
	if err = apiErr("delete file "+fileID, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Stores returns every vector store, oldest first.
func (o *OpenAI) Stores(ctx context.Context) ([]VectorStore, error) {
	it := o.c.VectorStores.ListAutoPaging(ctx, openai.VectorStoreListParams{
		Limit: openai.Int(100),
		Order: openai.VectorStoreListParamsOrderAsc,
	})
	var out []VectorStore
	for it.Next() {
		out = append(out, store(it.Current()))
	}
	if err := it.Err(); err != nil {
		return nil, apiErr("list vector stores", err)
	}
	return out, nil
}

// CreateStore creates a vector store that never expires.
func (o *OpenAI) CreateStore(ctx context.Context, name string, metadata map[string]string) (VectorStore, error) {
	vs, err := o.c.VectorStores.New(ctx, openai.VectorStoreNewParams{
		Name:     openai.String(name),
		Metadata: metadata,
	})
	if err != nil {
		return VectorStore{}, apiErr("create vector store "+name, err)
	}
	return store(*vs), nil
}

// Store returns one vector store with its counts and usage.
func (o *OpenAI) Store(ctx context.Context, storeID string) (VectorStore, error) {
	vs, err := o.c.VectorStores.Get(ctx, storeID)
	if err != nil {
		return VectorStore{}, apiErr("get vector store "+storeID, err)
	}
	return store(*vs), nil
}

// DeleteStore deletes a vector store (its files stay in Files). A store
// already gone is not an error.
func (o *OpenAI) DeleteStore(ctx context.Context, storeID string) error {
	_, err := o.c.VectorStores.Delete(ctx, storeID)
	if err == nil {
		return nil
	}
	if err = apiErr("delete vector store "+storeID, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func store(vs openai.VectorStore) VectorStore {
	return VectorStore{
		ID: vs.ID, Name: vs.Name, Metadata: vs.Metadata, CreatedAt: vs.CreatedAt, UsageBytes: vs.UsageBytes,
		Completed: vs.FileCounts.Completed, InProgress: vs.FileCounts.InProgress, Failed: vs.FileCounts.Failed,
		Total: vs.FileCounts.Total,
	}
}

// StoreFiles returns every file attached to a store, any status. OpenAI
// filters the listing by status only, so the stage picks a lesson's files
// by their attributes here.
func (o *OpenAI) StoreFiles(ctx context.Context, storeID string) ([]StoreFile, error) {
	it := o.c.VectorStores.Files.ListAutoPaging(ctx, storeID, openai.VectorStoreFileListParams{
		Limit: openai.Int(100),
		Order: openai.VectorStoreFileListParamsOrderAsc,
	})
	var out []StoreFile
	for it.Next() {
		out = append(out, storeFile(it.Current()))
	}
	if err := it.Err(); err != nil {
		return nil, apiErr("list files of vector store "+storeID, err)
	}
	return out, nil
}

// Attach attaches an uploaded file to a store with attributes and static
// chunking. Attaching a file already attached answers the attachment as it
// is, so the SDK's retries are safe here.
func (o *OpenAI) Attach(ctx context.Context, storeID, fileID string, attrs map[string]any, maxTokens, overlapTokens int) (StoreFile, error) {
	params := openai.VectorStoreFileNewParams{
		FileID:     fileID,
		Attributes: map[string]openai.VectorStoreFileNewParamsAttributeUnion{},
		ChunkingStrategy: openai.FileChunkingStrategyParamOfStatic(openai.StaticFileChunkingStrategyParam{
			MaxChunkSizeTokens: int64(maxTokens), ChunkOverlapTokens: int64(overlapTokens),
		}),
	}
	for k, v := range attrs {
		switch v := v.(type) {
		case string:
			params.Attributes[k] = openai.VectorStoreFileNewParamsAttributeUnion{OfString: openai.String(v)}
		case float64:
			params.Attributes[k] = openai.VectorStoreFileNewParamsAttributeUnion{OfFloat: openai.Float(v)}
		case bool:
			params.Attributes[k] = openai.VectorStoreFileNewParamsAttributeUnion{OfBool: openai.Bool(v)}
		default:
			return StoreFile{}, failure.Permanentf("openai: attach %s: attribute %s is a %T, not a string, number or boolean", fileID, k, v)
		}
	}
	vf, err := o.c.VectorStores.Files.New(ctx, storeID, params)
	if err != nil {
		return StoreFile{}, apiErr("attach "+fileID+" to vector store "+storeID, err)
	}
	return storeFile(*vf), nil
}

// StoreFile returns one attachment, and how long the server asks a poller
// to wait before looking again (openai-poll-after-ms; zero when it says
// nothing).
func (o *OpenAI) StoreFile(ctx context.Context, storeID, fileID string) (StoreFile, time.Duration, error) {
	var raw *http.Response
	vf, err := o.c.VectorStores.Files.Get(ctx, storeID, fileID, option.WithResponseInto(&raw))
	if err != nil {
		return StoreFile{}, 0, apiErr("get file "+fileID+" of vector store "+storeID, err)
	}
	var after time.Duration
	if raw != nil {
		if ms, err := strconv.ParseInt(raw.Header.Get("openai-poll-after-ms"), 10, 64); err == nil && ms > 0 {
			after = time.Duration(ms) * time.Millisecond
		}
	}
	return storeFile(*vf), after, nil
}

// Detach removes a file from a store (the file stays in Files). An
// attachment already gone is not an error.
func (o *OpenAI) Detach(ctx context.Context, storeID, fileID string) error {
	_, err := o.c.VectorStores.Files.Delete(ctx, storeID, fileID)
	if err == nil {
		return nil
	}
	if err = apiErr("detach "+fileID+" from vector store "+storeID, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

func storeFile(vf openai.VectorStoreFile) StoreFile {
	sf := StoreFile{FileID: vf.ID, Status: string(vf.Status), UsageBytes: vf.UsageBytes, CreatedAt: vf.CreatedAt,
		Attributes: make(map[string]any, len(vf.Attributes))}
	if vf.LastError.Code != "" || vf.LastError.Message != "" {
		sf.LastError = &IndexError{Code: string(vf.LastError.Code), Message: vf.LastError.Message}
	}
	for k, v := range vf.Attributes {
		var val any
		if json.Unmarshal([]byte(v.RawJSON()), &val) == nil {
			sf.Attributes[k] = val
		}
	}
	return sf
}
