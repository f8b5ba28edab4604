package openai_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	localopenai "github.com/coursekb/pipeline/local/openai"
)

// schools publishes four lessons into two schools' stores, as the sync stage
// does, and returns the store ids and file ids by lesson.
func schools(t *testing.T, ctx context.Context, c openai.Client) (prog, mkt string, files map[string]string) {
	t.Helper()
	prog, mkt = newStore(t, ctx, c, "programacion").ID, newStore(t, ctx, c, "marketing").ID
	files = map[string]string{}
	for _, l := range []struct {
		id, store, school, level, text string
	}{
		{"py-vars", prog, "programacion", "basico", lessonPythonVars},
		{"js-funcs", prog, "programacion", "intermedio", lessonJSFunctions},
		{"seo", mkt, "marketing", "basico", lessonSEO},
		{"email", mkt, "marketing", "intermedio", lessonEmail},
	} {
		f := upload(t, ctx, c, "lesson-"+l.id+"-v1.md", l.text)
		vf := attachAndWait(t, ctx, c, l.store, f.ID, attrs{"lesson_id": str(l.id), "school": str(l.school),
			"level": str(l.level), "version": num(1)})
		if vf.Status != "completed" {
			t.Fatalf("lesson %s: %s", l.id, vf.RawJSON())
		}
		files[l.id] = f.ID
	}
	return prog, mkt, files
}

func fileSearch(storeIDs []string, filters responses.FileSearchToolFiltersUnionParam) responses.ToolUnionParam {
	return responses.ToolUnionParam{OfFileSearch: &responses.FileSearchToolParam{
		VectorStoreIDs: storeIDs, Filters: filters, MaxNumResults: openai.Int(5)}}
}

func eq(key, value string) *shared.ComparisonFilterParam {
	return &shared.ComparisonFilterParam{Key: key, Type: shared.ComparisonFilterTypeEq,
		Value: shared.ComparisonFilterValueUnionParam{OfString: openai.String(value)}}
}

func ask(t *testing.T, ctx context.Context, c openai.Client, question string, tool responses.ToolUnionParam, include bool) (*responses.Response, responses.ResponseFileSearchToolCall, responses.ResponseOutputMessage) {
	t.Helper()
	p := responses.ResponseNewParams{
		Model:        shared.ResponsesModel("gpt-4.1-mini"),
		Instructions: openai.String("Responde solo con el contenido del curso."),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String(question)},
		Tools:        []responses.ToolUnionParam{tool},
	}
	if include {
		p.Include = []responses.ResponseIncludable{responses.ResponseIncludableFileSearchCallResults}
	}
	resp, err := c.Responses.New(ctx, p)
	if err != nil {
		t.Fatalf("ask %q: %v", question, err)
	}
	if len(resp.Output) != 2 || resp.Output[0].Type != "file_search_call" || resp.Output[1].Type != "message" {
		t.Fatalf("output = %s", resp.RawJSON())
	}
	return resp, resp.Output[0].AsFileSearchCall(), resp.Output[1].AsMessage()
}

func TestResponsesFileSearch(t *testing.T) {
	t.Parallel()
	srv, c := start(t, localopenai.Options{IndexingDelay: -1})
	ctx := t.Context()
	prog, mkt, files := schools(t, ctx, c)
	both := []string{prog, mkt}

	// Over both stores the Python lesson's declaring chunk comes first.
	resp, call, msg := ask(t, ctx, c, "¿Cómo se declara una variable en Python?", fileSearch(both, responses.FileSearchToolFiltersUnionParam{}), true)
	if call.Status != "completed" || len(call.Queries) != 1 || call.ID == "" {
		t.Errorf("file_search_call = %s", call.RawJSON())
	}
	if len(call.Results) == 0 {
		t.Fatalf("no results: %s", call.RawJSON())
	}
	top := call.Results[0]
	if top.FileID != files["py-vars"] || top.Filename != "lesson-py-vars-v1.md" || !strings.Contains(top.Text, "se declara") {
		t.Errorf("top result = %s", top.RawJSON())
	}
	if top.Attributes["lesson_id"].AsString() != "py-vars" || top.Attributes["version"].AsFloat() != 1 {
		t.Errorf("top attributes = %s", top.RawJSON())
	}
	for i, r := range call.Results {
		if r.Score <= 0 || r.Score > 1 || (i > 0 && r.Score > call.Results[i-1].Score) {
			t.Errorf("result %d score %v out of order or range", i, r.Score)
		}
	}

	// The answer: the local heading, quotes, and citations OutputText shows.
	text := resp.OutputText()
	if !strings.HasPrefix(text, localopenai.AnswerHeading) || !strings.Contains(text, "se declara asignándole un valor") {
		t.Errorf("answer = %q", text)
	}
	content := msg.Content[0]
	if content.Type != "output_text" || content.Text != text || len(content.Annotations) == 0 {
		t.Fatalf("message content = %s", msg.RawJSON())
	}
	cite := content.Annotations[0].AsFileCitation()
	if cite.Type != "file_citation" || cite.FileID != files["py-vars"] || cite.Filename != "lesson-py-vars-v1.md" ||
		cite.Index <= 0 || cite.Index > int64(utf8.RuneCountInString(text)) {
		t.Errorf("citation = %s", content.Annotations[0].RawJSON())
	}
	if u := resp.Usage; u.InputTokens <= 0 || u.OutputTokens <= 0 || u.TotalTokens != u.InputTokens+u.OutputTokens {
		t.Errorf("usage = %s", u.RawJSON())
	}
	if resp.Status != "completed" || resp.Model != "gpt-4.1-mini" || resp.Instructions.OfString == "" {
		t.Errorf("response = %s", resp.RawJSON())
	}

	// eq on a string attribute keeps to one school, even for a word both use.
	_, call, _ = ask(t, ctx, c, "variables de personalización", fileSearch(both,
		responses.FileSearchToolFiltersUnionParam{OfComparisonFilter: eq("school", "marketing")}), true)
	if len(call.Results) == 0 {
		t.Fatal("no marketing results")
	}
	for _, r := range call.Results {
		if r.Attributes["school"].AsString() != "marketing" {
			t.Errorf("eq filter let through %s", r.RawJSON())
		}
	}
	if call.Results[0].FileID != files["email"] {
		t.Errorf("top marketing result = %s", call.Results[0].FileID)
	}

	// and of two comparisons.
	and := &shared.CompoundFilterParam{Type: shared.CompoundFilterTypeAnd, Filters: []shared.CompoundFilterFilterUnionParam{
		{OfComparison: eq("school", "programacion")}, {OfComparison: eq("level", "intermedio")}}}
	_, call, _ = ask(t, ctx, c, "¿Cómo se declara una función o una variable?", fileSearch(both,
		responses.FileSearchToolFiltersUnionParam{OfCompoundFilter: and}), true)
	if len(call.Results) == 0 {
		t.Fatal("no results for the and filter")
	}
	for _, r := range call.Results {
		if r.FileID != files["js-funcs"] {
			t.Errorf("and filter let through %s", r.FileID)
		}
	}

	// Without include, no results are sent, and the answer still cites.
	resp, call, msg = ask(t, ctx, c, "palabras clave de cola larga", fileSearch([]string{mkt}, responses.FileSearchToolFiltersUnionParam{}), false)
	if call.Results != nil || call.JSON.Results.Raw() != "null" {
		t.Errorf("results sent without include: %s", call.RawJSON())
	}
	if a := msg.Content[0].Annotations; len(a) == 0 || a[0].AsFileCitation().FileID != files["seo"] {
		t.Errorf("uninclude answer citations = %s", msg.RawJSON())
	}

	// Nothing found: said so, no citations.
	resp, call, msg = ask(t, ctx, c, "xilófono cuántico", fileSearch(both, responses.FileSearchToolFiltersUnionParam{}), true)
	if len(call.Results) != 0 || len(msg.Content[0].Annotations) != 0 ||
		resp.OutputText() != localopenai.AnswerHeading+"\n\n"+localopenai.NoResultsAnswer {
		t.Errorf("no-result answer = %q, %s", resp.OutputText(), call.RawJSON())
	}

	// A message-list input asks its last user message; the stored response
	// can be read back.
	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{
		Model: shared.ResponsesModel("gpt-4.1-mini"),
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("Hola", responses.EasyInputMessageRoleUser),
			responses.ResponseInputItemParamOfMessage("¿En qué te ayudo?", responses.EasyInputMessageRoleAssistant),
			responses.ResponseInputItemParamOfMessage("¿Qué devuelve una función sin return?", responses.EasyInputMessageRoleUser),
		}},
		Tools: []responses.ToolUnionParam{fileSearch([]string{prog}, responses.FileSearchToolFiltersUnionParam{})},
	})
	if err != nil {
		t.Fatal(err)
	}
	if call := resp.Output[0].AsFileSearchCall(); len(call.Queries) != 1 || call.Queries[0] != "¿Qué devuelve una función sin return?" {
		t.Errorf("queries = %v", call.Queries)
	}
	if !strings.Contains(resp.OutputText(), "undefined") {
		t.Errorf("answer = %q", resp.OutputText())
	}
	stored, err := c.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
	if err != nil || stored.OutputText() != resp.OutputText() {
		t.Errorf("stored response: %v", err)
	}
	if cn := srv.Counters(); cn.ResponseCalls != 6 {
		t.Errorf("response calls = %d", cn.ResponseCalls)
	}

	// The search endpoint ranks the same way.
	page, err := c.VectorStores.Search(ctx, prog, openai.VectorStoreSearchParams{
		Query: openai.VectorStoreSearchParamsQueryUnion{OfString: openai.String("funciones flecha")}})
	if err != nil || len(page.Data) == 0 || page.Data[0].FileID != files["js-funcs"] ||
		!strings.Contains(page.Data[0].Content[0].Text, "flecha") {
		t.Errorf("search = %v, %v", page, err)
	}
}

func TestResponsesErrors(t *testing.T) {
	t.Parallel()
	_, c := start(t, localopenai.Options{})
	ctx := t.Context()
	cases := []struct {
		name      string
		params    responses.ResponseNewParams
		status    int
		wantParam string
	}{
		{"unknown store", responses.ResponseNewParams{Model: "gpt-4.1", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("q")},
			Tools: []responses.ToolUnionParam{responses.ToolParamOfFileSearch([]string{"vs_nope"})}}, 404, "tools[0].vector_store_ids"},
		{"bad filter operator", responses.ResponseNewParams{Model: "gpt-4.1", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("q")},
			Tools: []responses.ToolUnionParam{fileSearch([]string{"vs_x"}, responses.FileSearchToolFiltersUnionParam{
				OfComparisonFilter: &shared.ComparisonFilterParam{Key: "k", Type: "like", Value: shared.ComparisonFilterValueUnionParam{OfString: openai.String("v")}}})}},
			400, "tools[0].filters.type"},
		{"no model", responses.ResponseNewParams{Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("q")}}, 400, "model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Responses.New(ctx, tc.params)
			if e := apiError(t, err); e.StatusCode != tc.status || e.Param != tc.wantParam {
				t.Errorf("got %d param %q: %s", e.StatusCode, e.Param, e.Message)
			}
		})
	}
}
