// Package gcs is the local Cloud Storage: fake-gcs-server's in-process server
// (github.com/fsouza/fake-gcs-server/fakestorage) on 127.0.0.1 over plain HTTP,
// so the official client reaches it through STORAGE_EMULATOR_HOST or through
// Server.Client. Used by tests and by the one-machine stack (DESIGN.md
// section 6); `pipeline gcs-server` runs it in a process of its own.
//
// Known limits of fake-gcs-server v1.56.1 that matter here: every object is
// held whole in the server's memory while it is stored (also with the
// filesystem backend, which then writes it with fsync), the backend hashes
// every object it stores (MD5 and CRC32C) with no way to hand it a hash, and
// its own resumable upload path re-hashes everything received so far on each
// chunk (quadratic time). This package therefore serves resumable uploads
// itself (uploads.go, feed.go): chunks stream straight into the store, as a
// single-request upload's body does. A session that declared an MD5 hashes
// the bytes once more itself: the backend's hash is known only once the
// object is stored, too late to refuse it. Single-request (media, multipart)
// uploads still go through fakestorage.
package gcs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
)

// Options configure Start.
type Options struct {
	// Addr is host:port to listen on; empty means 127.0.0.1 on a free port.
	Addr string
	// Root is the directory that holds buckets and objects; empty keeps
	// everything in memory.
	Root string
	// Buckets are created at start (existing ones under Root are kept).
	Buckets []string
	// NotifyProjectID and NotifyTopic, when both set, make the server publish
	// a Cloud Storage notification (attributes eventType, bucketId, objectId,
	// objectGeneration, payloadFormat JSON_API_V1; data: the object resource)
	// to that Pub/Sub topic whenever an object is finalized. The publisher is
	// the official Pub/Sub client: it talks to PUBSUB_EMULATOR_HOST when set,
	// which must be set before Start.
	NotifyProjectID string
	NotifyTopic     string
	// NotifyBucket limits notifications to one bucket (the raw bucket, say);
	// NotifyPrefix to object names with that prefix.
	NotifyBucket string
	NotifyPrefix string
	// Log, when set, receives the server's request log.
	Log io.Writer
}

// Server is a running local Cloud Storage.
type Server struct {
	fs  *fakestorage.Server
	srv *http.Server
	ln  net.Listener
	up  *uploads
}

// Start starts a server.
func Start(opts Options) (*Server, error) {
	host, port := "127.0.0.1", uint16(0)
	if opts.Addr != "" {
		h, p, err := net.SplitHostPort(opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("local gcs: address %q: %w", opts.Addr, err)
		}
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("local gcs: port in %q: %w", opts.Addr, err)
		}
		if h != "" {
			host = h
		}
		port = uint16(n)
	}
	fo := fakestorage.Options{
		Scheme:      "http",
		Host:        host,
		Port:        port,
		StorageRoot: opts.Root,
		Writer:      opts.Log,
		// The official client reads objects over the XML API, path style,
		// from the emulator host: fakestorage routes /<bucket>/<object> only
		// for requests addressed to its public host.
		PublicHost: host,
	}
	if (opts.NotifyProjectID == "") != (opts.NotifyTopic == "") {
		return nil, errors.New("local gcs: NotifyProjectID and NotifyTopic go together")
	}
	if opts.NotifyTopic != "" {
		fo.EventOptions = fakestorage.EventManagerOptions{
			ProjectID:    opts.NotifyProjectID,
			TopicName:    strings.TrimPrefix(opts.NotifyTopic, "projects/"+opts.NotifyProjectID+"/topics/"),
			Bucket:       opts.NotifyBucket,
			ObjectPrefix: opts.NotifyPrefix,
			NotifyOn:     fakestorage.EventNotificationOptions{Finalize: true},
		}
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("local gcs: listen on %s: %w", addr, err)
	}
	fo.NoListener = true // served below, behind the resumable upload front
	fs, err := fakestorage.NewServerWithOptions(fo)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("local gcs: start: %w", err)
	}
	up := &uploads{fs: fs, next: fs.HTTPHandler(), idleAfter: streamIdle, ahead: maxAhead, sessions: map[string]*session{}}
	s := &Server{fs: fs, ln: ln, up: up, srv: &http.Server{Handler: up, ReadHeaderTimeout: 30 * time.Second}}
	go s.srv.Serve(ln)
	for _, b := range opts.Buckets {
		if err := s.CreateBucket(b); err != nil {
			fs.Stop()
			return nil, err
		}
	}
	return s, nil
}

// CreateBucket creates a bucket; an existing one is kept as it is.
func (s *Server) CreateBucket(name string) (err error) {
	defer s.up.waiting()()
	defer func() {
		// fakestorage panics when the backend refuses.
		if r := recover(); r != nil {
			err = fmt.Errorf("local gcs: create bucket %q: %v", name, r)
		}
	}()
	if _, gerr := s.fs.Backend().GetBucket(name); gerr == nil {
		return nil
	}
	s.fs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return nil
}

// URL is the server's base URL (http://127.0.0.1:PORT).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Host is host:port, the value for STORAGE_EMULATOR_HOST.
func (s *Server) Host() string { return strings.TrimPrefix(s.URL(), "http://") }

// Client returns an official Cloud Storage client that talks to the server
// over HTTP, as a client configured by STORAGE_EMULATOR_HOST does.
func (s *Server) Client() *storage.Client {
	c, err := storage.NewClient(context.Background(),
		option.WithEndpoint(s.URL()+"/storage/v1/"),
		option.WithoutAuthentication())
	if err != nil {
		// NewClient fails only on contradictory options, which these are not.
		panic(fmt.Sprintf("local gcs: client: %v", err))
	}
	return c
}

// Stop stops the server and drops unfinished uploads.
func (s *Server) Stop() {
	s.srv.Close()
	s.up.closeAll()
	s.fs.Stop()
}
