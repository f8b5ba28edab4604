package ask

import (
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3/responses"
)

// What a model's answer may look like: two citations at one index (one
// sentence, two sources), a passage that only the second section of a
// retrieved window holds, a passage from the tail of a section the window
// cut (before its first heading: no time can be told), and a file whose
// chunks were not included (the name still says the lesson).
func TestCitationsOfAModelsAnswer(t *testing.T) {
	t.Parallel()
	window := "anterior termina con la palabra zanahoria.\n\n## [00:01:00–00:02:05]\n\nEl bucle for recorre una lista.\n\n## [00:02:05–00:03:00]\n\nEl bucle while repite mientras la condición sea cierta.\n"
	other := "## [00:10:00–00:11:00]\n\nLas listas se ordenan con sort.\n"
	answer := "While repite mientras la condición sea cierta.【1】 También se ordenan listas.【2】 Y la zanahoria anterior.【3】"
	idx := func(marker string) int {
		rs := []rune(answer)
		m := []rune(marker)
		for i := range rs {
			if string(rs[i:min(i+len(m), len(rs))]) == marker {
				return i
			}
		}
		t.Fatalf("no %s", marker)
		return 0
	}
	body := map[string]any{
		"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5", "created_at": 1,
		"output": []any{
			map[string]any{"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": []string{"q"},
				"results": []any{
					map[string]any{"file_id": "file-a", "filename": "lesson-L1-v3.md", "score": 0.9, "text": window,
						"attributes": map[string]any{"lesson": "L1", "version": 3, "title": "Bucles"}},
					map[string]any{"file_id": "file-b", "filename": "lesson-L2-v1.md", "score": 0.5, "text": other,
						"attributes": map[string]any{"lesson": "L2", "version": 1}},
				}},
			map[string]any{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
				"content": []any{map[string]any{"type": "output_text", "text": answer, "annotations": []any{
					map[string]any{"type": "file_citation", "file_id": "file-a", "filename": "lesson-L1-v3.md", "index": idx("【1】")},
					map[string]any{"type": "file_citation", "file_id": "file-b", "filename": "lesson-L2-v1.md", "index": idx("【2】")},
					map[string]any{"type": "file_citation", "file_id": "file-c", "filename": "lesson-L3-v2.md", "index": idx("【2】")},
					map[string]any{"type": "file_citation", "file_id": "file-a", "filename": "lesson-L1-v3.md", "index": idx("【3】")},
					map[string]any{"type": "file_citation", "file_id": "file-a", "filename": "lesson-L1-v3.md", "index": idx("【3】")},
				}}}},
		},
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	var resp responses.Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	cs := citations(&resp, "")
	if len(cs) != 4 {
		t.Fatalf("%d citations: %+v", len(cs), cs)
	}
	want := []struct {
		lesson     string
		version    int
		start, end float64
		title      string
	}{
		{"L1", 3, 125, 180, "Bucles"}, // the while section, not the window's first heading
		{"L2", 1, 600, 660, ""},
		{"L3", 2, -1, -1, ""},       // nothing retrieved of it: lesson from its name
		{"L1", 3, -1, -1, "Bucles"}, // the cut tail: no heading of its own
	}
	for i, w := range want {
		c := cs[i]
		if c.LessonID != w.lesson || c.Version != w.version || seconds(c.Start) != w.start || seconds(c.End) != w.end || c.Title != w.title {
			t.Errorf("citation %d = %+v (%v–%v), want %+v", i, c, seconds(c.Start), seconds(c.End), w)
		}
	}
	if cs[3].Quote != "anterior termina con la palabra zanahoria." {
		t.Errorf("tail quote = %q", cs[3].Quote)
	}
}

// A citation of the document's header (its keywords matched the question)
// points at the timed section of that lesson that best answers the
// question: a citation says where in the video to look.
func TestHeaderCitationTakesTheAnsweringMoment(t *testing.T) {
	t.Parallel()
	doc := "# Bucles\n\n- Palabras clave: bucle, while, for\n\n## [00:00:00–00:01:00]\n\nEl bucle for recorre una lista.\n\n## [00:01:00–00:02:00]\n\nEl bucle while repite mientras la condición sea cierta.\n"
	answer := "Palabras clave: bucle, while.【1】"
	body := map[string]any{
		"id": "resp_2", "object": "response", "status": "completed", "model": "gpt-5", "created_at": 1,
		"output": []any{
			map[string]any{"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": []string{"q"},
				"results": []any{map[string]any{"file_id": "file-a", "filename": "lesson-L1-v1.md", "score": 0.9, "text": doc,
					"attributes": map[string]any{"lesson": "L1", "version": 1}}}},
			map[string]any{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
				"content": []any{map[string]any{"type": "output_text", "text": answer, "annotations": []any{
					map[string]any{"type": "file_citation", "file_id": "file-a", "filename": "lesson-L1-v1.md", "index": len([]rune(answer)) - 3},
				}}}},
		},
	}
	b, _ := json.Marshal(body)
	var resp responses.Response
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	cs := citations(&resp, "¿Qué hace el bucle while mientras la condición sea cierta?")
	if len(cs) != 1 || seconds(cs[0].Start) != 60 || seconds(cs[0].End) != 120 {
		t.Fatalf("citations %+v, want the while section, 60–120 s", cs)
	}
}

func seconds(p *float64) float64 {
	if p == nil {
		return -1
	}
	return *p
}
