package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadNamesEveryProblem(t *testing.T) {
	var cfg Downloader
	err := LoadFrom(&cfg, map[string]string{"MAX_MEDIA_BYTES": "lots", "DOWNLOAD_LEASE": "soon"})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"GOOGLE_CLOUD_PROJECT is not set", "RAW_BUCKET is not set", "MAX_MEDIA_BYTES", "DOWNLOAD_LEASE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestLoadDefaultsAndValues(t *testing.T) {
	var cfg Detector
	err := LoadFrom(&cfg, map[string]string{
		"GOOGLE_CLOUD_PROJECT": "p", "HOTMART_CLIENT_ID": "id", "HOTMART_CLIENT_SECRET": "s",
		"HOTMART_BASIC_TOKEN": "b", "COURSE_CATALOG": "{}", "RAW_BUCKET": "raw", "DETECTION_BUDGET": "90s",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Budget != 90*time.Second || cfg.Hotmart.BaseURL != "https://developers.hotmart.com" || cfg.MediaIngestPrefix != "ingest" || cfg.LogLevel != "info" {
		t.Errorf("unexpected config %+v", cfg)
	}
}
