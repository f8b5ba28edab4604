package detector

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/config"
	"github.com/coursekb/pipeline/shared/detect"
)

// LESSON_PAGE_TYPES decides which pages are lessons: CONTENT and WEBINAR
// unless set, and a value that names no page type stops the start-up.
func TestLessonPageTypes(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"GOOGLE_CLOUD_PROJECT": "p", "HOTMART_CLIENT_ID": "id", "HOTMART_CLIENT_SECRET": "s", "HOTMART_BASIC_TOKEN": "b",
		"COURSE_CATALOG": `{"1":{"subdomain":"a","school":"b"}}`, "RAW_BUCKET": "raw",
	}
	tests := []struct {
		value string // "" leaves the variable unset
		want  []string
		err   string
	}{
		{"", []string{"CONTENT", "WEBINAR"}, ""},
		{"content, quiz", []string{"CONTENT", "QUIZ"}, ""},
		{"CONTENT,not a type", nil, `"NOT A TYPE"`},
	}
	for _, tt := range tests {
		vars := maps.Clone(base)
		if tt.value != "" {
			vars["LESSON_PAGE_TYPES"] = tt.value
		}
		var cfg config.Detector
		if err := config.LoadFrom(&cfg, vars); err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		h, err := New(Deps{Hotmart: stubHotmart{}, Store: stubStore{}, Publisher: stubPublisher{},
			Catalog: detect.Catalog{1: {Subdomain: "a", School: "b"}}, LessonTypes: cfg.LessonPageTypes,
			Resolver: func(context.Context) (detect.MediaResolver, error) { return noMedia{}, nil },
			Log:      slog.New(slog.DiscardHandler)})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: err = %v, want one naming %s", tt.value, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.value, err)
		}
		d, err := h.detector(noMedia{})
		if err != nil || !slices.Equal(d.LessonTypes(), tt.want) {
			t.Errorf("%q: lesson types %v (%v), want %v", tt.value, d.LessonTypes(), err, tt.want)
		}
	}
}

// Stubs for construction only: nothing is called.
type (
	stubHotmart   struct{ detect.Hotmart }
	stubStore     struct{ detect.Store }
	stubPublisher struct{ detect.Publisher }
)
