package detect

import (
	"reflect"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/lessonstate"
)

func TestParseCatalog(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    Catalog
		wantErr []string // substrings of the error
	}{
		{
			name: "two products",
			in:   `{"4100001":{"subdomain":"python-desde-cero","school":"programacion"},"4100002":{"subdomain":"marketing-digital","school":"marketing"}}`,
			want: Catalog{
				4100001: {Subdomain: "python-desde-cero", School: "programacion"},
				4100002: {Subdomain: "marketing-digital", School: "marketing"},
			},
		},
		{name: "empty", in: "  ", wantErr: []string{"empty"}},
		{name: "no products", in: `{}`, wantErr: []string{"no products"}},
		{name: "not JSON", in: `4100001=python`, wantErr: []string{"not a JSON object"}},
		{name: "array", in: `[{"subdomain":"a","school":"b"}]`, wantErr: []string{"not a JSON object"}},
		{name: "unknown field", in: `{"1":{"subdomain":"a","school":"b","schol":"c"}}`, wantErr: []string{"schol"}},
		{name: "trailing data", in: `{"1":{"subdomain":"a","school":"b"}} {}`, wantErr: []string{"trailing"}},
		{
			name:    "every problem named",
			in:      `{"python":{"subdomain":"a","school":"b"},"-5":{"subdomain":"a","school":"b"},"7":{"school":"x"},"8":{"subdomain":"Bad Sub","school":""},"9":{"subdomain":"ok","school":"no/slash"}}`,
			wantErr: []string{`key "python"`, `key "-5"`, "product 7: subdomain is missing", `product 8: subdomain "Bad Sub"`, "product 8: school is missing", `product 9: school "no/slash"`},
		},
		{
			name:    "shared subdomain",
			in:      `{"1":{"subdomain":"same","school":"a"},"2":{"subdomain":"same","school":"b"}}`,
			wantErr: []string{`products 1 and 2 share subdomain "same"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCatalog(tt.in)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ParseCatalog: %v", err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("ParseCatalog = %v, want %v", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseCatalog = %v, want an error", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := func() lessonstate.Lesson {
		return lessonstate.Lesson{
			ID: "pyVars", CourseID: "4100001", CourseName: "Python", School: "programacion",
			ModuleID: "pyM1", ModuleName: "Fundamentos", ModuleOrder: 1, PageOrder: 1,
			Title: "Variables", Type: "CONTENT", HasMedia: true, MediaStatus: lessonstate.MediaReady,
			Media: &lessonstate.Media{Kind: "url", Ref: "pyVars", Ext: "mp4", Size: 10, MD5: "aa", Fingerprint: "fp1"},
		}
	}
	fp := Fingerprint(base())
	if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint = %q, want sha256 hex", fp)
	}
	if again := Fingerprint(base()); again != fp {
		t.Fatal("Fingerprint is not stable")
	}

	changes := map[string]func(l *lessonstate.Lesson){
		"id":                func(l *lessonstate.Lesson) { l.ID = "other" },
		"course id":         func(l *lessonstate.Lesson) { l.CourseID = "1" },
		"course name":       func(l *lessonstate.Lesson) { l.CourseName = "Python 2" },
		"school":            func(l *lessonstate.Lesson) { l.School = "datos" },
		"module id":         func(l *lessonstate.Lesson) { l.ModuleID = "pyM9" },
		"module name":       func(l *lessonstate.Lesson) { l.ModuleName = "Intro" },
		"module order":      func(l *lessonstate.Lesson) { l.ModuleOrder = 2 },
		"page order":        func(l *lessonstate.Lesson) { l.PageOrder = 2 },
		"title":             func(l *lessonstate.Lesson) { l.Title = "Variables!" },
		"type":              func(l *lessonstate.Lesson) { l.Type = "WEBINAR" },
		"has media":         func(l *lessonstate.Lesson) { l.HasMedia = false },
		"media status":      func(l *lessonstate.Lesson) { l.MediaStatus = lessonstate.MediaAwaiting },
		"media kind":        func(l *lessonstate.Lesson) { l.Media.Kind = "object" },
		"media fingerprint": func(l *lessonstate.Lesson) { l.Media.Fingerprint = "fp2" },
		"media gone":        func(l *lessonstate.Lesson) { l.Media = nil },
		"no media fingerprint, ref": func(l *lessonstate.Lesson) {
			l.Media.Fingerprint = ""
			fp0 := Fingerprint(*l)
			l.Media.Ref = "pyOther"
			if Fingerprint(*l) == fp0 {
				t.Error("without a media fingerprint, a new ref does not change the fingerprint")
			}
		},
		// Fields run together must not collide.
		"shifted text": func(l *lessonstate.Lesson) { l.ModuleName, l.Title = "FundamentosV", "ariables" },
	}
	for name, change := range changes {
		l := base()
		change(&l)
		if Fingerprint(l) == fp {
			t.Errorf("changing %s does not change the fingerprint", name)
		}
	}

	same := map[string]func(l *lessonstate.Lesson){
		"pipeline state": func(l *lessonstate.Lesson) {
			l.Version, l.Removed, l.LastRunID, l.OutboxPending = 7, true, "run-9", true
			l.Stages = map[string]lessonstate.Stage{lessonstate.StageSync: {State: lessonstate.StateDone}}
			l.Outbox = []lessonstate.Outbox{{Topic: "t", Data: []byte("{}")}}
			l.Fingerprint = "stale"
		},
	}
	for name, change := range same {
		l := base()
		change(&l)
		if Fingerprint(l) != fp {
			t.Errorf("changing %s changes the fingerprint", name)
		}
	}
}
