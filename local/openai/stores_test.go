package openai_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/tiktoken-go/tokenizer"

	localopenai "github.com/coursekb/pipeline/local/openai"
)

func TestUploadAttachPollCompletes(t *testing.T) {
	t.Parallel()
	srv, c := start(t, localopenai.Options{})
	ctx := t.Context()

	vs := newStore(t, ctx, c, "programacion")
	f := upload(t, ctx, c, "lesson-py1-v1.md", lessonPythonVars)
	if f.Filename != "lesson-py1-v1.md" || f.Bytes != int64(len(lessonPythonVars)) || f.Purpose != "assistants" || !strings.HasPrefix(f.ID, "file-") {
		t.Fatalf("uploaded file = %+v", f)
	}

	vf, err := c.VectorStores.Files.New(ctx, vs.ID, openai.VectorStoreFileNewParams{
		FileID:           f.ID,
		Attributes:       attrs{"lesson_id": str("py1"), "version": num(1), "published": boolean(true)},
		ChunkingStrategy: static(100, 50),
	})
	if err != nil {
		t.Fatal(err)
	}
	if vf.Status != openai.VectorStoreFileStatusInProgress || vf.ID != f.ID || vf.VectorStoreID != vs.ID {
		t.Fatalf("attach answered %+v, want in_progress", vf)
	}
	// With no interval of its own, PollStatus follows the server's
	// openai-poll-after-ms instead of waiting its default second.
	began := time.Now()
	done, err := c.VectorStores.Files.PollStatus(ctx, vs.ID, f.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(began); elapsed > 900*time.Millisecond {
		t.Errorf("polling took %v", elapsed)
	}
	if done.Status != openai.VectorStoreFileStatusCompleted || done.LastError.Code != "" {
		t.Fatalf("polled file = %s %+v, want completed", done.Status, done.LastError)
	}
	if got := done.Attributes["lesson_id"].AsString(); got != "py1" {
		t.Errorf("lesson_id = %q", got)
	}
	if got := done.Attributes["version"].AsFloat(); got != 1 {
		t.Errorf("version = %v", got)
	}
	if got := done.Attributes["published"].AsBool(); !got {
		t.Errorf("published = %v", got)
	}
	st := done.ChunkingStrategy.AsStatic().Static
	if done.ChunkingStrategy.Type != "static" || st.MaxChunkSizeTokens != 100 || st.ChunkOverlapTokens != 50 {
		t.Errorf("chunking strategy = %s", done.ChunkingStrategy.RawJSON())
	}
	if done.UsageBytes != int64(len(lessonPythonVars)) {
		t.Errorf("file usage_bytes = %d, want %d", done.UsageBytes, len(lessonPythonVars))
	}

	got, err := c.VectorStores.Get(ctx, vs.ID)
	if err != nil {
		t.Fatal(err)
	}
	if fc := got.FileCounts; fc.Completed != 1 || fc.Total != 1 || fc.InProgress != 0 || got.UsageBytes != int64(len(lessonPythonVars)) || got.Status != "completed" {
		t.Errorf("store = %s", got.RawJSON())
	}

	// The chunks are 100-token windows (cl100k_base) advancing by 50 tokens.
	enc, err := tokenizer.Get(tokenizer.Cl100kBase)
	if err != nil {
		t.Fatal(err)
	}
	total, _ := enc.Count(lessonPythonVars)
	live := srv.StoreFiles(vs.ID)
	if len(live) != 1 {
		t.Fatalf("live files = %+v", live)
	}
	chunks := live[0].Chunks
	if want := (total-100+49)/50 + 1; len(chunks) != want {
		t.Errorf("%d tokens gave %d chunks, want %d", total, len(chunks), want)
	}
	for i, ch := range chunks {
		if n, _ := enc.Count(ch); n > 101 { // a window cut inside a character may re-tokenize one token longer
			t.Errorf("chunk %d has %d tokens", i, n)
		}
		if !strings.Contains(lessonPythonVars, ch) {
			t.Errorf("chunk %d is not a substring of the file", i)
		}
		if i > 0 && !strings.Contains(chunks[i-1], ch[:20]) {
			t.Errorf("chunk %d does not start inside chunk %d (no overlap)", i, i-1)
		}
	}
	if !strings.HasPrefix(lessonPythonVars, chunks[0]) || !strings.HasSuffix(lessonPythonVars, chunks[len(chunks)-1]) {
		t.Error("chunks do not cover the file from start to end")
	}

	// The file's bytes and the store file's parsed content come back.
	res, err := c.Files.Content(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != lessonPythonVars {
		t.Errorf("content = %q", b)
	}
	page, err := c.VectorStores.Files.Content(ctx, vs.ID, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].Text != lessonPythonVars {
		t.Errorf("store file content = %s", page.RawJSON())
	}

	// Attributes can be replaced.
	upd, err := c.VectorStores.Files.Update(ctx, vs.ID, f.ID, openai.VectorStoreFileUpdateParams{
		Attributes: map[string]openai.VectorStoreFileUpdateParamsAttributeUnion{
			"lesson_id": {OfString: openai.String("py1")}, "retired": {OfBool: openai.Bool(true)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := upd.Attributes["version"]; ok || !upd.Attributes["retired"].AsBool() {
		t.Errorf("updated attributes = %s", upd.RawJSON())
	}
	if a := srv.LiveFiles()[vs.ID][0].Attributes; a["retired"] != true || a["lesson_id"] != "py1" {
		t.Errorf("LiveFiles attributes = %v", a)
	}
	cn := srv.Counters()
	if cn.Uploads != 1 || cn.Attaches != 1 || cn.AttributeUpdates != 1 || cn.StoresCreated != 1 {
		t.Errorf("counters = %+v", cn)
	}
}

func TestIndexingDelayPauseAndFailures(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv, c := start(t, localopenai.Options{Now: clk.Now, IndexingDelay: time.Minute})
	ctx := t.Context()
	vs := newStore(t, ctx, c, "s")
	status := func(fileID string) *openai.VectorStoreFile {
		t.Helper()
		vf, err := c.VectorStores.Files.Get(ctx, vs.ID, fileID)
		if err != nil {
			t.Fatal(err)
		}
		return vf
	}
	attach := func(fileID string) {
		t.Helper()
		if _, err := c.VectorStores.Files.New(ctx, vs.ID, openai.VectorStoreFileNewParams{FileID: fileID}); err != nil {
			t.Fatal(err)
		}
	}

	// In progress until the delay has passed, then completed.
	ok := upload(t, ctx, c, "lesson-a-v1.md", lessonPythonVars)
	attach(ok.ID)
	if vf := status(ok.ID); vf.Status != "in_progress" {
		t.Fatalf("before the delay: %s", vf.Status)
	}
	clk.Advance(time.Minute)
	if vf := status(ok.ID); vf.Status != "completed" {
		t.Fatalf("after the delay: %s", vf.Status)
	}

	// Paused, a file stays in progress past its delay; resumed, it completes.
	srv.PauseIndexing()
	held := upload(t, ctx, c, "lesson-b-v1.md", lessonJSFunctions)
	attach(held.ID)
	clk.Advance(time.Hour)
	if vf := status(held.ID); vf.Status != "in_progress" {
		t.Fatalf("paused: %s", vf.Status)
	}
	if vs2, _ := c.VectorStores.Get(ctx, vs.ID); vs2.FileCounts.InProgress != 1 || vs2.Status != "in_progress" {
		t.Errorf("paused store = %s", vs2.RawJSON())
	}
	srv.ResumeIndexing()
	if vf := status(held.ID); vf.Status != "completed" {
		t.Fatalf("resumed: %s", vf.Status)
	}

	// A type file_search does not read fails as OpenAI reports it.
	jsonl := upload(t, ctx, c, "chunks.jsonl", `{"text":"hola"}`+"\n")
	attach(jsonl.ID)
	clk.Advance(time.Minute)
	vf := status(jsonl.ID)
	if vf.Status != "failed" || vf.LastError.Code != "unsupported_file" || vf.LastError.Message == "" || vf.UsageBytes != 0 {
		t.Errorf("jsonl file = %s", vf.RawJSON())
	}

	// An injected failure, named by filename before the upload, fails one
	// indexing with last_error; a second attachment indexes normally.
	srv.FailIndexing("lesson-c-v1.md", "server_error", "boom")
	failing := upload(t, ctx, c, "lesson-c-v1.md", lessonSEO)
	attach(failing.ID)
	clk.Advance(time.Minute)
	vf = status(failing.ID)
	if vf.Status != "failed" || vf.LastError.Code != "server_error" || vf.LastError.Message != "boom" {
		t.Errorf("injected failure = %s", vf.RawJSON())
	}
	if _, err := c.VectorStores.Files.Delete(ctx, vs.ID, failing.ID); err != nil {
		t.Fatal(err)
	}
	attach(failing.ID)
	clk.Advance(time.Minute)
	if vf := status(failing.ID); vf.Status != "completed" {
		t.Errorf("second attachment: %s", vf.Status)
	}

	got, err := c.VectorStores.Get(ctx, vs.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(len(lessonPythonVars) + len(lessonJSFunctions) + len(lessonSEO))
	if fc := got.FileCounts; fc.Completed != 3 || fc.Failed != 1 || fc.Total != 4 || got.UsageBytes != want {
		t.Errorf("store counts = %s, want 3 completed, 1 failed, usage %d", got.RawJSON(), want)
	}
	failed, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Filter: "failed"})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed.Data) != 1 || failed.Data[0].ID != jsonl.ID {
		t.Errorf("failed filter = %s", failed.RawJSON())
	}
}

func TestDeleteFileRemovesItFromEveryStore(t *testing.T) {
	t.Parallel()
	srv, c := start(t, localopenai.Options{IndexingDelay: -1})
	ctx := t.Context()
	a, b := newStore(t, ctx, c, "a"), newStore(t, ctx, c, "b")
	f := upload(t, ctx, c, "lesson-x-v1.md", lessonEmail)
	keep := upload(t, ctx, c, "lesson-y-v1.md", lessonSEO)
	attachAndWait(t, ctx, c, a.ID, f.ID, nil)
	attachAndWait(t, ctx, c, b.ID, f.ID, nil)
	attachAndWait(t, ctx, c, b.ID, keep.ID, nil)

	del, err := c.Files.Delete(ctx, f.ID)
	if err != nil || !del.Deleted || del.ID != f.ID {
		t.Fatalf("delete = %+v, %v", del, err)
	}
	for _, vs := range []string{a.ID, b.ID} {
		_, err := c.VectorStores.Files.Get(ctx, vs, f.ID)
		if e := apiError(t, err); e.StatusCode != http.StatusNotFound {
			t.Errorf("store %s still answers for the deleted file: %d", vs, e.StatusCode)
		}
	}
	if _, err := c.Files.Get(ctx, f.ID); apiError(t, err).StatusCode != http.StatusNotFound {
		t.Error("deleted file still answers")
	}
	got, _ := c.VectorStores.Get(ctx, b.ID)
	if got.FileCounts.Total != 1 || got.UsageBytes != int64(len(lessonSEO)) {
		t.Errorf("store b after delete = %s", got.RawJSON())
	}
	if live := srv.LiveFiles(); len(live[a.ID]) != 0 || len(live[b.ID]) != 1 || live[b.ID][0].FileID != keep.ID {
		t.Errorf("LiveFiles = %+v", live)
	}

	// Detaching keeps the file itself.
	if _, err := c.VectorStores.Files.Delete(ctx, b.ID, keep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Files.Get(ctx, keep.ID); err != nil {
		t.Errorf("detached file is gone: %v", err)
	}
	if cn := srv.Counters(); cn.FileDeletes != 1 || cn.StoreFileDeletes != 1 {
		t.Errorf("counters = %+v", cn)
	}

	// Deleting the store keeps its files too.
	if d, err := c.VectorStores.Delete(ctx, a.ID); err != nil || !d.Deleted {
		t.Fatalf("delete store: %+v %v", d, err)
	}
	if _, err := c.VectorStores.Get(ctx, a.ID); apiError(t, err).StatusCode != http.StatusNotFound {
		t.Error("deleted store still answers")
	}
}

func TestListPagination(t *testing.T) {
	t.Parallel()
	_, c := start(t, localopenai.Options{IndexingDelay: -1})
	ctx := t.Context()
	vs := newStore(t, ctx, c, "paged")
	var ids []string
	for i := range 5 {
		f := upload(t, ctx, c, "lesson-"+string(rune('a'+i))+"-v1.md", lessonSEO)
		attachAndWait(t, ctx, c, vs.ID, f.ID, nil)
		ids = append(ids, f.ID)
	}
	other, err := c.Files.New(ctx, openai.FileNewParams{File: openai.File(strings.NewReader("x"), "b.txt", "text/plain"),
		Purpose: openai.FilePurposeUserData})
	if err != nil {
		t.Fatal(err)
	}

	// Manual pages of two, newest first.
	page, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{Limit: openai.Int(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 2 || !page.HasMore || page.Data[0].ID != ids[4] || page.Data[1].ID != ids[3] {
		t.Fatalf("first page = %s", page.RawJSON())
	}
	next, err := page.GetNextPage()
	if err != nil || next == nil || len(next.Data) != 2 || next.Data[0].ID != ids[2] {
		t.Fatalf("second page = %v, %v", next, err)
	}

	// Auto-paging walks every file, oldest first when asked.
	var walked []string
	iter := c.VectorStores.Files.ListAutoPaging(ctx, vs.ID, openai.VectorStoreFileListParams{Limit: openai.Int(2), Order: "asc"})
	for iter.Next() {
		walked = append(walked, iter.Current().ID)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(walked, ",") != strings.Join(ids, ",") {
		t.Errorf("auto-paged %v, want %v", walked, ids)
	}

	// A cursor still works after its item was deleted.
	if _, err := c.VectorStores.Files.Delete(ctx, vs.ID, ids[3]); err != nil {
		t.Fatal(err)
	}
	after, err := c.VectorStores.Files.List(ctx, vs.ID, openai.VectorStoreFileListParams{After: openai.String(ids[3])})
	if err != nil || len(after.Data) != 3 || after.Data[0].ID != ids[2] || after.HasMore {
		t.Errorf("after a deleted cursor: %v, %v", after, err)
	}

	// Files: purpose filter and pages.
	files, err := c.Files.List(ctx, openai.FileListParams{Purpose: openai.String("assistants"), Limit: openai.Int(3)})
	if err != nil || len(files.Data) != 3 || !files.HasMore {
		t.Fatalf("files page = %v, %v", files, err)
	}
	var all []string
	fiter := c.Files.ListAutoPaging(ctx, openai.FileListParams{Limit: openai.Int(4)})
	for fiter.Next() {
		all = append(all, fiter.Current().ID)
	}
	if fiter.Err() != nil || len(all) != 6 || all[0] != other.ID {
		t.Errorf("all files = %v, %v", all, fiter.Err())
	}

	// Vector stores list.
	newStore(t, ctx, c, "second")
	stores, err := c.VectorStores.List(ctx, openai.VectorStoreListParams{Limit: openai.Int(1)})
	if err != nil || len(stores.Data) != 1 || !stores.HasMore || stores.Data[0].Name != "second" {
		t.Errorf("stores page = %v, %v", stores, err)
	}
}

func TestStoreUpdateAndExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	_, c := start(t, localopenai.Options{Now: clk.Now})
	ctx := t.Context()
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{
		Name: openai.String("marketing"), Metadata: shared.Metadata{"school": "marketing"},
		ExpiresAfter: openai.VectorStoreNewParamsExpiresAfter{Days: 7},
	})
	if err != nil {
		t.Fatal(err)
	}
	if vs.Metadata["school"] != "marketing" || vs.ExpiresAfter.Days != 7 || vs.ExpiresAt != clk.Now().Unix()+7*86400 {
		t.Fatalf("created = %s", vs.RawJSON())
	}
	up, err := c.VectorStores.Update(ctx, vs.ID, openai.VectorStoreUpdateParams{Name: openai.String("mkt"),
		Metadata: shared.Metadata{"school": "mkt", "owner": "ana"}})
	if err != nil || up.Name != "mkt" || up.Metadata["owner"] != "ana" {
		t.Fatalf("updated = %v, %v", up, err)
	}
	clk.Advance(8 * 24 * time.Hour)
	got, err := c.VectorStores.Get(ctx, vs.ID)
	if err != nil || got.Status != openai.VectorStoreStatusExpired {
		t.Errorf("after 8 days: %v, %v", got, err)
	}
	_, err = c.VectorStores.Search(ctx, vs.ID, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("seo")}})
	if e := apiError(t, err); e.StatusCode != http.StatusBadRequest {
		t.Errorf("search on an expired store: %d", e.StatusCode)
	}
}

func TestCreateStoreWithFiles(t *testing.T) {
	t.Parallel()
	clk := newClock()
	srv, c := start(t, localopenai.Options{Now: clk.Now})
	ctx := t.Context()
	a, b := upload(t, ctx, c, "lesson-a-v1.md", lessonSEO), upload(t, ctx, c, "lesson-b-v1.md", lessonEmail)
	vs, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{Name: openai.String("s"), FileIDs: []string{a.ID, b.ID},
		ChunkingStrategy: static(300, 100)})
	if err != nil {
		t.Fatal(err)
	}
	if vs.FileCounts.InProgress != 2 || vs.FileCounts.Total != 2 || vs.Status != "in_progress" {
		t.Errorf("new store = %s", vs.RawJSON())
	}
	clk.Advance(time.Second)
	live := srv.StoreFiles(vs.ID)
	if len(live) != 2 || live[0].FileID != a.ID || live[1].Status != "completed" {
		t.Errorf("store files = %+v", live)
	}
	got, _ := c.VectorStores.Files.Get(ctx, vs.ID, b.ID)
	if st := got.ChunkingStrategy.AsStatic().Static; st.MaxChunkSizeTokens != 300 || st.ChunkOverlapTokens != 100 {
		t.Errorf("chunking = %s", got.RawJSON())
	}
	if _, err := c.VectorStores.New(ctx, openai.VectorStoreNewParams{FileIDs: []string{"file-nope"}}); apiError(t, err).StatusCode != http.StatusBadRequest {
		t.Error("a store with an unknown file was created")
	}
}

func TestAttachValidation(t *testing.T) {
	t.Parallel()
	_, c := start(t, localopenai.Options{IndexingDelay: -1})
	ctx := t.Context()
	vs := newStore(t, ctx, c, "v")
	f := upload(t, ctx, c, "lesson-v-v1.md", lessonSEO)

	many := func(n int) attrs {
		a := attrs{}
		for i := range n {
			a[strings.Repeat("k", 1+i)] = str("v")
		}
		return a
	}
	cases := []struct {
		name      string
		params    openai.VectorStoreFileNewParams
		opts      []option.RequestOption
		wantParam string
		wantCode  string
	}{
		{name: "17 keys", params: openai.VectorStoreFileNewParams{Attributes: many(17)},
			wantParam: "attributes", wantCode: "object_above_max_properties"},
		{name: "65-character key", params: openai.VectorStoreFileNewParams{Attributes: attrs{strings.Repeat("k", 65): str("v")}},
			wantParam: "attributes", wantCode: "object_property_name_too_long"},
		{name: "513-character value", params: openai.VectorStoreFileNewParams{Attributes: attrs{"title": str(strings.Repeat("á", 513))}},
			wantParam: "attributes.title", wantCode: "string_above_max_length"},
		{name: "object value", opts: []option.RequestOption{option.WithJSONSet("attributes", map[string]any{"nested": map[string]any{"a": 1}})},
			wantParam: "attributes.nested", wantCode: "invalid_type"},
		{name: "chunks below 100 tokens", params: openai.VectorStoreFileNewParams{ChunkingStrategy: static(99, 0)},
			wantParam: "chunking_strategy.static.max_chunk_size_tokens", wantCode: "integer_below_min_value"},
		{name: "chunks above 4096 tokens", params: openai.VectorStoreFileNewParams{ChunkingStrategy: static(4097, 0)},
			wantParam: "chunking_strategy.static.max_chunk_size_tokens", wantCode: "integer_above_max_value"},
		{name: "overlap above half", params: openai.VectorStoreFileNewParams{ChunkingStrategy: static(400, 201)},
			wantParam: "chunking_strategy.static.chunk_overlap_tokens", wantCode: "invalid_value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.params.FileID = f.ID
			_, err := c.VectorStores.Files.New(ctx, vs.ID, tc.params, tc.opts...)
			e := apiError(t, err)
			if e.StatusCode != http.StatusBadRequest || e.Param != tc.wantParam || e.Code != tc.wantCode ||
				e.Type != "invalid_request_error" || e.Message == "" {
				t.Errorf("got %d param=%q code=%q type=%q message=%q", e.StatusCode, e.Param, e.Code, e.Type, e.Message)
			}
		})
	}

	// The limits themselves are allowed.
	edge := many(15)
	edge[strings.Repeat("x", 64)] = str(strings.Repeat("ñ", 512))
	vf := attachAndWait(t, ctx, c, vs.ID, f.ID, edge)
	if vf.Status != "completed" || len(vf.Attributes) != 16 {
		t.Errorf("16 attributes at the limits: %s", vf.RawJSON())
	}
	if _, err := c.VectorStores.Files.New(ctx, vs.ID, openai.VectorStoreFileNewParams{FileID: "file-nope"}); apiError(t, err).StatusCode != http.StatusNotFound {
		t.Error("attaching an unknown file did not answer 404")
	}
}
