// Package ask answers a question from a school's lessons (DESIGN.md
// section 1: the Responses API with the file_search tool over the school's
// vector store) and checks how well it does (Evaluate, for `pipeline
// eval`).
//
// A citation of OpenAI's names only a file and a position in the answer. So
// the call asks for file_search_call.results, which carry each retrieved
// chunk's text and attributes; a citation is matched to the chunk of its file
// that shares the most words with the passage it ends, the lesson and version
// are read from the chunk's attributes, and the time range from the chunk's
// own "## [hh:mm:ss–hh:mm:ss]" heading (chunk.ParseTimeRange). The package
// is the adapter around the SDK's Responses API: its types stay here.
package ask

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/openai/openai-go/v3/shared"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/failure"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/setup"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// Asker asks questions of schools' assistants. It is safe for concurrent
// use.
type Asker struct {
	store    *lessonstate.Store
	client   openai.Client
	defaults Assistant
}

// New returns an Asker reading schools and lessons from store.
func New(store *lessonstate.Store, c Config) (*Asker, error) {
	if err := setup.Missing("ask", map[string]any{"store": store}); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("ask: %w", err)
	}
	opts := []option.RequestOption{
		option.WithAPIKey(c.APIKey),
		option.WithMaxRetries(c.MaxRetries),
		option.WithRequestTimeout(c.RequestTimeout),
	}
	if c.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(c.BaseURL))
	}
	return &Asker{store: store, client: openai.NewClient(opts...), defaults: c.defaults()}, nil
}

// Question is what is asked, of which school, narrowed to a course (its
// Hotmart product id) or a level when those are set.
type Question struct {
	School string
	Course string
	Level  string
	Text   string
}

// Answer is the assistant's answer and what it cites.
type Answer struct {
	Text      string     `json:"answer"`
	Citations []Citation `json:"citations"`
	Model     string     `json:"model"`
}

// Citation is a passage of a lesson the answer relies on.
type Citation struct {
	LessonID string `json:"lessonId"`
	Version  int    `json:"version"`
	Title    string `json:"title,omitempty"`
	// Start and End are the cited chunk's span of the lesson's video, in
	// seconds; absent when the cited text has no heading of its own (the
	// document's header, or the tail of a section cut by the store).
	Start *float64 `json:"start"`
	End   *float64 `json:"end"`
	// Quote is the cited section's text, as the store retrieved it.
	Quote    string  `json:"quote"`
	FileID   string  `json:"fileId"`
	Filename string  `json:"filename"`
	Score    float64 `json:"score"`
}

// Ask asks q of its school's assistant.
func (a *Asker) Ask(ctx context.Context, q Question) (Answer, error) {
	if strings.TrimSpace(q.Text) == "" || q.School == "" {
		return Answer{}, failure.Permanentf("ask: a question and a school are needed")
	}
	sc, ok, err := a.store.School(ctx, q.School)
	if err != nil {
		return Answer{}, fmt.Errorf("ask: %w", err)
	}
	if !ok || sc.VectorStoreID == "" {
		return Answer{}, failure.Permanentf("ask: school %q has no vector store: none of its lessons has been synced", q.School)
	}
	as := a.assistant(sc.Assistant)
	filters, err := filtersFor(q)
	if err != nil {
		return Answer{}, err
	}
	tool := &responses.FileSearchToolParam{
		VectorStoreIDs: []string{sc.VectorStoreID},
		MaxNumResults:  openai.Int(int64(as.MaxResults)),
		Filters:        filters,
	}
	resp, err := a.client.Responses.New(ctx, responses.ResponseNewParams{
		Model:        shared.ResponsesModel(as.Model),
		Instructions: openai.String(as.Instructions),
		Input:        responses.ResponseNewParamsInputUnion{OfString: openai.String(q.Text)},
		Tools:        []responses.ToolUnionParam{{OfFileSearch: tool}},
		Include:      []responses.ResponseIncludable{responses.ResponseIncludableFileSearchCallResults},
	})
	if err != nil {
		return Answer{}, apiErr(err)
	}
	if resp.Status != "" && resp.Status != responses.ResponseStatusCompleted {
		return Answer{}, fmt.Errorf("ask: the response ended %s: %s", resp.Status, resp.RawJSON())
	}
	ans := Answer{Text: resp.OutputText(), Model: resp.Model, Citations: citations(resp, q.Text)}
	if err := a.titles(ctx, ans.Citations); err != nil {
		return Answer{}, err
	}
	return ans, nil
}

// assistant is the configuration's defaults with the school's overrides.
func (a *Asker) assistant(o *lessonstate.Assistant) Assistant {
	as := a.defaults
	if o != nil {
		as.Model = cmp.Or(o.Model, as.Model)
		as.Instructions = cmp.Or(o.Instructions, as.Instructions)
		if o.MaxResults >= 1 && o.MaxResults <= 50 {
			as.MaxResults = o.MaxResults
		}
	}
	return as
}

// filtersFor turns the question's course and level into attribute filters
// on the store's files (vectorsync's attributes), both when both are set.
func filtersFor(q Question) (responses.FileSearchToolFiltersUnionParam, error) {
	var cmps []*shared.ComparisonFilterParam
	eq := func(key, value string) {
		cmps = append(cmps, &shared.ComparisonFilterParam{Key: key, Type: shared.ComparisonFilterTypeEq,
			Value: shared.ComparisonFilterValueUnionParam{OfString: openai.String(value)}})
	}
	if q.Course != "" {
		eq(vectorsync.AttrCourse, q.Course)
	}
	if q.Level != "" {
		level, err := NormalizeLevel(q.Level)
		if err != nil {
			return responses.FileSearchToolFiltersUnionParam{}, err
		}
		eq(vectorsync.AttrLevel, level)
	}
	switch len(cmps) {
	case 0:
		return responses.FileSearchToolFiltersUnionParam{}, nil
	case 1:
		return responses.FileSearchToolFiltersUnionParam{OfComparisonFilter: cmps[0]}, nil
	}
	and := &shared.CompoundFilterParam{Type: shared.CompoundFilterTypeAnd}
	for _, c := range cmps {
		and.Filters = append(and.Filters, shared.CompoundFilterFilterUnionParam{OfComparison: c})
	}
	return responses.FileSearchToolFiltersUnionParam{OfCompoundFilter: and}, nil
}

// NormalizeLevel maps what a person types ("basico", "Básico") to the level
// the enrich stage writes (artifact.Levels).
func NormalizeLevel(s string) (string, error) {
	for _, l := range artifact.Levels {
		if fold(l) == fold(s) {
			return l, nil
		}
	}
	return "", failure.Permanentf("ask: level %q is none of %s", s, strings.Join(artifact.Levels, ", "))
}

// fold lowercases and drops the Spanish accents.
func fold(s string) string {
	return strings.NewReplacer("á", "a", "é", "e", "í", "i", "ó", "o", "ú", "u", "ü", "u").
		Replace(strings.ToLower(strings.TrimSpace(s)))
}

// titles fills the titles the files' attributes did not carry from the
// lessons' documents.
func (a *Asker) titles(ctx context.Context, cs []Citation) error {
	var ids []string
	for _, c := range cs {
		if c.Title == "" && c.LessonID != "" {
			ids = append(ids, c.LessonID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ls, err := a.store.LessonsByID(ctx, ids)
	if err != nil {
		return fmt.Errorf("ask: lesson titles: %w", err)
	}
	byID := map[string]string{}
	for _, l := range ls {
		byID[l.ID] = l.Title
	}
	for i := range cs {
		if cs[i].Title == "" {
			cs[i].Title = byID[cs[i].LessonID]
		}
	}
	return nil
}

// apiErr names OpenAI's status, code and message; a request OpenAI refuses
// as malformed (400) is permanent.
func apiErr(err error) error {
	var e *openai.Error
	if !errors.As(err, &e) {
		return fmt.Errorf("ask: %w", err)
	}
	msg := fmt.Sprintf("ask: openai: %d %s: %s", e.StatusCode, e.Code, e.Message)
	if e.StatusCode == 400 {
		return failure.Permanentf("%s", msg)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
