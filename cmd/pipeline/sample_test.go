package main

import (
	"strings"
	"testing"

	"github.com/coursekb/pipeline/local/stack"
)

// A user's exported variables are what the local run's functions get, for
// the services they switch to real; the others stay local, and the run says
// which is which without printing secrets.
func TestRealServicesComeFromTheEnvironment(t *testing.T) {
	env := map[string]string{
		"HOTMART_BASE_URL":      "https://sandbox.hotmart.com",
		"HOTMART_CLIENT_SECRET": "s3cret",
		"MEDIA_MANIFEST_URI":    "https://videos.example/manifest.json?sig=abc",
	}
	var opts stack.Options
	lines := withRealServices(&opts, func(k string) string { return env[k] })
	if opts.Env["HOTMART_BASE_URL"] != "https://sandbox.hotmart.com" || opts.Env["HOTMART_CLIENT_SECRET"] != "s3cret" ||
		opts.Env["MEDIA_MANIFEST_URI"] != env["MEDIA_MANIFEST_URI"] {
		t.Fatalf("functions' environment %v", opts.Env)
	}
	if _, set := opts.Env["COURSE_CATALOG"]; set {
		t.Fatal("an unset variable was passed on")
	}
	out := strings.Join(lines, "\n")
	for _, want := range []string{"Hotmart API     REAL (HOTMART_BASE_URL=https://sandbox.hotmart.com)", "course catalog  local", "media source    REAL", "OpenAI          local",
		"warning: a real Hotmart with the sample's course catalog"} {
		if !strings.Contains(out, want) {
			t.Errorf("report %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "sig=abc") {
		t.Errorf("report leaks a secret: %s", out)
	}
}
