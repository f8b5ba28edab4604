package openai

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFilterOperators(t *testing.T) {
	t.Parallel()
	attrs := map[string]any{"school": "marketing", "version": float64(3), "published": true, "date": "2026-03-01"}
	cases := []struct {
		filter string
		want   bool
	}{
		{`{"type":"eq","key":"school","value":"marketing"}`, true},
		{`{"type":"eq","key":"school","value":"MARKETING"}`, false},
		{`{"type":"eq","key":"version","value":"3"}`, false}, // types must agree
		{`{"type":"ne","key":"school","value":"programacion"}`, true},
		{`{"type":"ne","key":"missing","value":"x"}`, false},
		{`{"type":"gt","key":"version","value":2}`, true},
		{`{"type":"gte","key":"version","value":3}`, true},
		{`{"type":"lt","key":"version","value":3}`, false},
		{`{"type":"lte","key":"version","value":3}`, true},
		{`{"type":"gt","key":"date","value":"2026-01-01"}`, true},
		{`{"type":"gt","key":"school","value":2}`, false},
		{`{"type":"eq","key":"published","value":true}`, true},
		{`{"type":"in","key":"school","value":["design","marketing"]}`, true},
		{`{"type":"in","key":"version","value":[1,2]}`, false},
		{`{"type":"nin","key":"version","value":[1,2]}`, true},
		{`{"type":"and","filters":[{"type":"eq","key":"school","value":"marketing"},{"type":"gte","key":"version","value":4}]}`, false},
		{`{"type":"or","filters":[{"type":"eq","key":"school","value":"design"},{"type":"gte","key":"version","value":3}]}`, true},
		{`{"type":"and","filters":[{"type":"or","filters":[{"type":"eq","key":"school","value":"x"},{"type":"eq","key":"published","value":true}]},{"type":"lt","key":"version","value":10}]}`, true},
	}
	for _, tc := range cases {
		f, e := parseFilter([]byte(tc.filter), "filters")
		if e != nil {
			t.Errorf("%s: %s", tc.filter, e.message)
			continue
		}
		if got := f.match(attrs); got != tc.want {
			t.Errorf("%s = %v, want %v", tc.filter, got, tc.want)
		}
	}
	for _, bad := range []string{
		`{"type":"like","key":"k","value":"v"}`,
		`{"type":"in","key":"k","value":"v"}`,
		`{"type":"eq","key":"k","value":["v"]}`,
		`{"type":"eq","value":"v"}`,
		`{"type":"and","filters":[]}`,
		`{"type":"in","key":"k","value":[true]}`,
	} {
		if _, e := parseFilter([]byte(bad), "filters"); e == nil || e.status != 400 {
			t.Errorf("%s was accepted", bad)
		}
	}
}

func TestChunkTextKeepsCharactersWhole(t *testing.T) {
	t.Parallel()
	text := strings.Repeat("Añadir acentuación: ¿qué función cumple el índice? Ñandú, pingüino, 東京. ", 60)
	chunks, err := chunkText(text, 100, 40)
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 5 {
		t.Fatalf("%d chunks", len(chunks))
	}
	for i, c := range chunks {
		if !utf8.ValidString(c) || !strings.Contains(text, c) {
			t.Errorf("chunk %d is not a whole-character substring", i)
		}
		n, _ := countTokens(embeddingCodec, c)
		if n > 102 {
			t.Errorf("chunk %d has %d tokens", i, n)
		}
	}
	if !strings.HasPrefix(text, chunks[0]) || !strings.HasSuffix(text, chunks[len(chunks)-1]) {
		t.Error("chunks do not span the text")
	}
}

func TestTermsFoldAccentsAndPlurals(t *testing.T) {
	t.Parallel()
	got := strings.Join(terms("¿Qué son las FUNCIONES y la función de Variables?"), " ")
	if got != "funcion funcion variabl" {
		t.Errorf("terms = %q", got)
	}
}
