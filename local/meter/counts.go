package meter

import (
	"maps"
	"sort"
	"strings"
	"sync"

	"cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/proto"
)

// Counts is what a Proxy counted. Maps are never nil.
type Counts struct {
	// Firestore. Collection paths drop document ids: lessons/L1/outbox/E
	// counts under "lessons/outbox".
	Writes  map[string]int // documents set or updated, by collection path
	Deletes map[string]int // documents deleted, by collection path
	Reads   map[string]int // documents read (gets, query results), by collection path
	// Commits counts successful commits, Transactions the transactions
	// begun, Rollbacks those rolled back, Queries the queries run.
	Commits, Transactions, Rollbacks, Queries int
	// LessonWrites counts writes and deletes of lessons/{id} and of the
	// documents under it, by lesson id.
	LessonWrites map[string]int
	// LessonFields counts the writes of lesson documents by what they
	// wrote: the update mask's fields, each cut to its first two parts
	// ("stages.download", "usage"), the bookkeeping ones (updatedAt,
	// nextCheckAt) left out; "(whole document)" for a write with no mask.
	LessonFields map[string]int

	// Pub/Sub. Topic and subscription ids, without the project.
	Published       map[string]int   // messages published, by topic
	PublishedBytes  map[string]int64 // data and attributes published, by topic
	PublishRequests int
	// LessonMessages counts published messages by their lessonId attribute.
	LessonMessages map[string]int
	// Delivered counts messages handed to subscribers, by subscription.
	Delivered map[string]int

	// Calls counts every call by full method name; Errors those that
	// ended with an error.
	Calls  map[string]int
	Errors map[string]int
}

func newCounts() Counts {
	return Counts{
		Writes: map[string]int{}, Deletes: map[string]int{}, Reads: map[string]int{}, LessonWrites: map[string]int{}, LessonFields: map[string]int{},
		Published: map[string]int{}, PublishedBytes: map[string]int64{}, LessonMessages: map[string]int{},
		Delivered: map[string]int{}, Calls: map[string]int{}, Errors: map[string]int{},
	}
}

func (c Counts) clone() Counts {
	o := c
	o.Writes, o.Deletes, o.Reads, o.LessonWrites = maps.Clone(c.Writes), maps.Clone(c.Deletes), maps.Clone(c.Reads), maps.Clone(c.LessonWrites)
	o.LessonFields = maps.Clone(c.LessonFields)
	o.Published, o.PublishedBytes, o.LessonMessages = maps.Clone(c.Published), maps.Clone(c.PublishedBytes), maps.Clone(c.LessonMessages)
	o.Delivered, o.Calls, o.Errors = maps.Clone(c.Delivered), maps.Clone(c.Calls), maps.Clone(c.Errors)
	return o
}

// Sub returns c minus before: what was counted between two snapshots.
func (c Counts) Sub(before Counts) Counts {
	o := newCounts()
	subInt := func(dst, a, b map[string]int) {
		for k, v := range a {
			if d := v - b[k]; d != 0 {
				dst[k] = d
			}
		}
	}
	subInt(o.Writes, c.Writes, before.Writes)
	subInt(o.Deletes, c.Deletes, before.Deletes)
	subInt(o.Reads, c.Reads, before.Reads)
	subInt(o.LessonWrites, c.LessonWrites, before.LessonWrites)
	subInt(o.LessonFields, c.LessonFields, before.LessonFields)
	subInt(o.Published, c.Published, before.Published)
	subInt(o.LessonMessages, c.LessonMessages, before.LessonMessages)
	subInt(o.Delivered, c.Delivered, before.Delivered)
	subInt(o.Calls, c.Calls, before.Calls)
	subInt(o.Errors, c.Errors, before.Errors)
	for k, v := range c.PublishedBytes {
		if d := v - before.PublishedBytes[k]; d != 0 {
			o.PublishedBytes[k] = d
		}
	}
	o.Commits = c.Commits - before.Commits
	o.Transactions = c.Transactions - before.Transactions
	o.Rollbacks = c.Rollbacks - before.Rollbacks
	o.Queries = c.Queries - before.Queries
	o.PublishRequests = c.PublishRequests - before.PublishRequests
	return o
}

// TotalWrites is every document written or deleted.
func (c Counts) TotalWrites() int { return sum(c.Writes) + sum(c.Deletes) }

// TotalReads is every document read.
func (c Counts) TotalReads() int { return sum(c.Reads) }

// TotalPublished is every message published.
func (c Counts) TotalPublished() int { return sum(c.Published) }

// WritesByCollection is writes and deletes together, by collection path.
func (c Counts) WritesByCollection() map[string]int {
	out := maps.Clone(c.Writes)
	for k, v := range c.Deletes {
		out[k] += v
	}
	return out
}

func sum[M ~map[string]int](m M) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Keys returns m's keys sorted by value, largest first, then by name.
func Keys[V int | int64](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool {
		if m[ks[i]] != m[ks[j]] {
			return m[ks[i]] > m[ks[j]]
		}
		return ks[i] < ks[j]
	})
	return ks
}

// observer decodes the frames of one call it counts. request and response
// may be called from two goroutines at once.
type observer interface {
	request(b []byte)
	response(b []byte)
	end(err error)
}

// Methods counted.
const (
	fsService = "/google.firestore.v1.Firestore/"
	psPub     = "/google.pubsub.v1.Publisher/"
	psSub     = "/google.pubsub.v1.Subscriber/"
)

func (p *Proxy) observerFor(method string) observer {
	switch method {
	case fsService + "Commit":
		return &commitObs{p: p}
	case fsService + "BatchWrite":
		return &batchWriteObs{p: p}
	case fsService + "BeginTransaction":
		return &endObs{fn: func(c *Counts) { c.Transactions++ }, p: p}
	case fsService + "Rollback":
		return &endObs{fn: func(c *Counts) { c.Rollbacks++ }, p: p}
	case fsService + "BatchGetDocuments":
		return &batchGetObs{p: p}
	case fsService + "RunQuery":
		return &queryObs{p: p}
	case psPub + "Publish":
		return &publishObs{p: p}
	case psSub + "StreamingPull", psSub + "Pull":
		return &pullObs{p: p, streaming: strings.HasSuffix(method, "StreamingPull")}
	}
	return nil
}

// collectionOf turns a document name into its collection path and, for a
// document under lessons/{id}, the lesson id.
func collectionOf(name string) (coll, lesson string) {
	_, rel, ok := strings.Cut(name, "/documents/")
	if !ok {
		return "?", ""
	}
	segs := strings.Split(rel, "/")
	var cs []string
	for i := 0; i < len(segs); i += 2 {
		cs = append(cs, segs[i])
	}
	if len(segs) >= 2 && segs[0] == "lessons" {
		lesson = segs[1]
	}
	return strings.Join(cs, "/"), lesson
}

func lastSegment(name string) string { return name[strings.LastIndex(name, "/")+1:] }

type endObs struct {
	p  *Proxy
	fn func(*Counts)
}

func (o *endObs) request([]byte)  {}
func (o *endObs) response([]byte) {}
func (o *endObs) end(err error) {
	if err == nil {
		o.p.update(o.fn)
	}
}

// commitObs counts a commit's writes once it succeeded.
type commitObs struct {
	p   *Proxy
	mu  sync.Mutex
	req *firestorepb.CommitRequest
}

func (o *commitObs) request(b []byte) {
	r := &firestorepb.CommitRequest{}
	if proto.Unmarshal(b, r) == nil {
		o.mu.Lock()
		o.req = r
		o.mu.Unlock()
	}
}
func (o *commitObs) response([]byte) {}
func (o *commitObs) end(err error) {
	o.mu.Lock()
	r := o.req
	o.mu.Unlock()
	if err != nil || r == nil {
		return
	}
	o.p.update(func(c *Counts) {
		c.Commits++
		for _, w := range r.GetWrites() {
			countWrite(c, w)
		}
	})
}

func countWrite(c *Counts, w *firestorepb.Write) {
	var name string
	del := false
	switch op := w.GetOperation().(type) {
	case *firestorepb.Write_Update:
		name = op.Update.GetName()
	case *firestorepb.Write_Delete:
		name, del = op.Delete, true
	case *firestorepb.Write_Transform:
		name = op.Transform.GetDocument()
	}
	coll, lesson := collectionOf(name)
	if del {
		c.Deletes[coll]++
	} else {
		c.Writes[coll]++
	}
	if coll == "lessons" && !del {
		c.LessonFields[fieldsOf(w)]++
	}
	if lesson != "" {
		c.LessonWrites[lesson]++
	}
}

// fieldsOf names what a write of a lesson document wrote: its update
// mask's fields, each cut to two parts, bookkeeping left out.
func fieldsOf(w *firestorepb.Write) string {
	paths := w.GetUpdateMask().GetFieldPaths()
	for _, t := range append(w.GetUpdateTransforms(), w.GetTransform().GetFieldTransforms()...) {
		paths = append(paths, t.GetFieldPath())
	}
	if len(paths) == 0 {
		return "(whole document)"
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range paths {
		parts := strings.SplitN(strings.ReplaceAll(p, "`", ""), ".", 3)
		f := parts[0]
		if f == "stages" && len(parts) > 1 {
			f += "." + parts[1]
		}
		if f == "updatedAt" || f == "nextCheckAt" || seen[f] {
			continue
		}
		seen[f] = true
		out = append(out, f)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return "(bookkeeping only)"
	}
	return strings.Join(out, "+")
}

// batchWriteObs counts the writes of a BatchWrite that succeeded.
type batchWriteObs struct {
	p   *Proxy
	mu  sync.Mutex
	req *firestorepb.BatchWriteRequest
}

func (o *batchWriteObs) request(b []byte) {
	r := &firestorepb.BatchWriteRequest{}
	if proto.Unmarshal(b, r) == nil {
		o.mu.Lock()
		o.req = r
		o.mu.Unlock()
	}
}
func (o *batchWriteObs) response(b []byte) {
	resp := &firestorepb.BatchWriteResponse{}
	if proto.Unmarshal(b, resp) != nil {
		return
	}
	o.mu.Lock()
	r := o.req
	o.mu.Unlock()
	if r == nil {
		return
	}
	o.p.update(func(c *Counts) {
		for i, w := range r.GetWrites() {
			if i < len(resp.GetStatus()) && resp.GetStatus()[i].GetCode() != 0 {
				continue
			}
			countWrite(c, w)
		}
	})
}
func (o *batchWriteObs) end(error) {}

// batchGetObs counts the documents a get returned, found or missing.
type batchGetObs struct{ p *Proxy }

func (o *batchGetObs) request([]byte) {}
func (o *batchGetObs) response(b []byte) {
	r := &firestorepb.BatchGetDocumentsResponse{}
	if proto.Unmarshal(b, r) != nil {
		return
	}
	name := r.GetFound().GetName()
	if name == "" {
		name = r.GetMissing()
	}
	if name == "" {
		return // a transaction id only
	}
	coll, _ := collectionOf(name)
	o.p.update(func(c *Counts) { c.Reads[coll]++ })
}
func (o *batchGetObs) end(error) {}

// queryObs counts a query's documents, and one read for a query that
// returned none.
type queryObs struct {
	p    *Proxy
	mu   sync.Mutex
	coll string
	docs int
}

func (o *queryObs) request(b []byte) {
	r := &firestorepb.RunQueryRequest{}
	if proto.Unmarshal(b, r) != nil {
		return
	}
	coll := "?"
	if from := r.GetStructuredQuery().GetFrom(); len(from) > 0 {
		coll = from[0].GetCollectionId()
		if from[0].GetAllDescendants() {
			coll = "*/" + coll
		} else if _, rel, ok := strings.Cut(r.GetParent(), "/documents/"); ok {
			parent, _ := collectionOf("/documents/" + rel)
			coll = parent + "/" + coll
		}
	}
	o.mu.Lock()
	o.coll = coll
	o.mu.Unlock()
}

func (o *queryObs) response(b []byte) {
	r := &firestorepb.RunQueryResponse{}
	if proto.Unmarshal(b, r) != nil || r.GetDocument() == nil {
		return
	}
	coll, _ := collectionOf(r.GetDocument().GetName())
	o.mu.Lock()
	o.docs++
	o.mu.Unlock()
	o.p.update(func(c *Counts) { c.Reads[coll]++ })
}

func (o *queryObs) end(err error) {
	o.mu.Lock()
	coll, docs := o.coll, o.docs
	o.mu.Unlock()
	o.p.update(func(c *Counts) {
		c.Queries++
		if docs == 0 && err == nil {
			c.Reads[coll]++
		}
	})
}

// publishObs counts a publish's messages once the service accepted them.
type publishObs struct {
	p   *Proxy
	mu  sync.Mutex
	req *pubsubpb.PublishRequest
}

func (o *publishObs) request(b []byte) {
	r := &pubsubpb.PublishRequest{}
	if proto.Unmarshal(b, r) == nil {
		o.mu.Lock()
		o.req = r
		o.mu.Unlock()
	}
}
func (o *publishObs) response([]byte) {}
func (o *publishObs) end(err error) {
	o.mu.Lock()
	r := o.req
	o.mu.Unlock()
	if err != nil || r == nil {
		return
	}
	topic := lastSegment(r.GetTopic())
	o.p.update(func(c *Counts) {
		c.PublishRequests++
		for _, m := range r.GetMessages() {
			c.Published[topic]++
			n := int64(len(m.GetData()))
			for k, v := range m.GetAttributes() {
				n += int64(len(k) + len(v))
			}
			c.PublishedBytes[topic] += n
			if id := m.GetAttributes()["lessonId"]; id != "" {
				c.LessonMessages[id]++
			}
		}
	})
}

// pullObs counts the messages a pull handed to its subscription.
type pullObs struct {
	p         *Proxy
	streaming bool
	mu        sync.Mutex
	sub       string
}

func (o *pullObs) request(b []byte) {
	var sub string
	if o.streaming {
		r := &pubsubpb.StreamingPullRequest{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		sub = r.GetSubscription()
	} else {
		r := &pubsubpb.PullRequest{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		sub = r.GetSubscription()
	}
	if sub == "" {
		return // a later request of the stream: acks and deadlines only
	}
	o.mu.Lock()
	o.sub = lastSegment(sub)
	o.mu.Unlock()
}

func (o *pullObs) response(b []byte) {
	var n int
	if o.streaming {
		r := &pubsubpb.StreamingPullResponse{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		n = len(r.GetReceivedMessages())
	} else {
		r := &pubsubpb.PullResponse{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		n = len(r.GetReceivedMessages())
	}
	if n == 0 {
		return
	}
	o.mu.Lock()
	sub := o.sub
	o.mu.Unlock()
	o.p.update(func(c *Counts) { c.Delivered[sub] += n })
}
func (o *pullObs) end(error) {}
