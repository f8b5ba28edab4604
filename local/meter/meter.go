// Package meter counts what the pipeline asks of Firestore and Pub/Sub at
// the emulators' doors, and how long each function is busy at the
// functions' door, so that a load run reports measured figures instead of
// estimates (issue 9: writes and messages per lesson, function seconds).
//
// A Proxy is a transparent gRPC proxy in front of one emulator: every call,
// of any service and shape (unary, server, client and bidirectional
// streams), is forwarded to the emulator byte for byte through a
// pass-through codec, with its metadata, headers, trailers and status. Only
// the calls it counts are decoded, from a copy of their frames:
//
//   - Firestore Commit and BatchWrite: documents written and deleted, by
//     collection path ("lessons", "lessons/outbox"), once the call
//     succeeded; BeginTransaction and Rollback; documents read by
//     BatchGetDocuments and RunQuery (a query that returns nothing counts
//     one read, as Firestore bills it).
//   - Pub/Sub Publish: messages and bytes by topic, once published; Pull
//     and StreamingPull: messages handed to each subscription.
//
// Writes and published messages are also counted by lesson (the document
// lessons/{id} and what is under it; a message's lessonId attribute).
//
// A Proxy has a second, quiet address that forwards the same way and
// counts nothing: the harness that watches a run reads through it, so its
// polling is not mistaken for the pipeline's work.
package meter

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// Proxy forwards gRPC calls to an emulator and counts them.
type Proxy struct {
	target string
	conn   *grpc.ClientConn

	servers []*grpc.Server
	addr    string
	quiet   string
	wg      sync.WaitGroup

	mu sync.Mutex
	c  Counts
}

// Start listens on two free loopback ports (Addr counts, QuietAddr does
// not) and forwards every call to target (host:port of an emulator).
func Start(target string) (*Proxy, error) {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return nil, fmt.Errorf("meter: dial %s: %w", target, err)
	}
	p := &Proxy{target: target, conn: conn, c: newCounts()}
	for i, counted := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("meter: listen: %w", err)
		}
		srv := grpc.NewServer(
			grpc.UnknownServiceHandler(p.handler(counted)),
			grpc.ForceServerCodec(rawCodec{}),
			grpc.MaxRecvMsgSize(math.MaxInt32),
			grpc.MaxSendMsgSize(math.MaxInt32),
		)
		p.servers = append(p.servers, srv)
		if i == 0 {
			p.addr = ln.Addr().String()
		} else {
			p.quiet = ln.Addr().String()
		}
		p.wg.Go(func() { _ = srv.Serve(ln) })
	}
	return p, nil
}

// Addr is the counted address: give it to the pipeline instead of the
// emulator's.
func (p *Proxy) Addr() string { return p.addr }

// QuietAddr forwards the same way without counting.
func (p *Proxy) QuietAddr() string { return p.quiet }

// Target is the emulator's address.
func (p *Proxy) Target() string { return p.target }

// Close stops both listeners, cutting calls in flight, and the connection
// to the emulator.
func (p *Proxy) Close() {
	for _, s := range p.servers {
		s.Stop()
	}
	p.wg.Wait()
	if p.conn != nil {
		p.conn.Close()
	}
}

// Counts returns a copy of what was counted so far.
func (p *Proxy) Counts() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c.clone()
}

// Reset forgets what was counted.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.c = newCounts()
}

func (p *Proxy) update(fn func(c *Counts)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn(&p.c)
}

// streamDesc lets one handler forward every kind of call: the client side
// of a forwarded call may always send and receive many messages.
var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// handler forwards one call of any method to the emulator.
func (p *Proxy) handler(counted bool) grpc.StreamHandler {
	return func(_ any, ss grpc.ServerStream) error {
		method, ok := grpc.MethodFromServerStream(ss)
		if !ok {
			return errors.New("meter: no method on the stream")
		}
		md, _ := metadata.FromIncomingContext(ss.Context())
		out := metadata.MD{}
		for k, v := range md {
			if strings.HasPrefix(k, ":") || k == "content-type" || k == "user-agent" {
				continue
			}
			out[k] = v
		}
		ctx := metadata.NewOutgoingContext(ss.Context(), out)
		var obs observer
		if counted {
			obs = p.observerFor(method)
		}
		finish := func(err error) {
			if counted {
				p.done(method, obs, err)
			}
		}
		cs, err := grpc.NewClientStream(ctx, streamDesc, p.conn, method, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			finish(err)
			return err
		}
		// Client to emulator. The goroutine ends when the client closes
		// its side, or when the call ends (RecvMsg then fails).
		go func() {
			for {
				f := &frame{}
				if err := ss.RecvMsg(f); err != nil {
					if errors.Is(err, io.EOF) {
						_ = cs.CloseSend()
					}
					return
				}
				if obs != nil {
					obs.request(f.b)
				}
				if cs.SendMsg(f) != nil {
					return // the emulator ended the call: RecvMsg below has its status
				}
			}
		}()
		// Emulator to client.
		if hdr, err := cs.Header(); err == nil && len(hdr) > 0 {
			if err := ss.SendHeader(hdr); err != nil {
				finish(err)
				return err
			}
		}
		for {
			f := &frame{}
			err := cs.RecvMsg(f)
			if errors.Is(err, io.EOF) {
				ss.SetTrailer(cs.Trailer())
				finish(nil)
				return nil
			}
			if err != nil {
				ss.SetTrailer(cs.Trailer())
				finish(err)
				return err
			}
			if obs != nil {
				obs.response(f.b)
			}
			if err := ss.SendMsg(f); err != nil {
				finish(err)
				return err
			}
		}
	}
}

// done ends a call's counting: its observer learns how it ended, and the
// call is counted by method.
func (p *Proxy) done(method string, obs observer, err error) {
	p.update(func(c *Counts) {
		c.Calls[method]++
		if err != nil {
			c.Errors[method]++
		}
	})
	if obs != nil {
		obs.end(err)
	}
}

// frame is a message as bytes: the proxy never decodes what it forwards.
type frame struct{ b []byte }

// rawCodec passes frames through unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("meter: cannot marshal %T", v)
	}
	return f.b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("meter: cannot unmarshal into %T", v)
	}
	f.b = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }
