package cost

import (
	"bytes"
	"math"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/download"
	"github.com/coursekb/pipeline/shared/lessonstate"
	"github.com/coursekb/pipeline/shared/transcribe"
	"github.com/coursekb/pipeline/shared/vectorsync"
)

// fixedPrices is a table with round numbers, so the arithmetic below can be
// done by hand; it does not depend on prices.yaml.
func fixedPrices() Prices {
	var p Prices
	p.AsOf = "2000-01-01"
	p.Speech = map[string]SpeechPrice{"chirp_3": {Standard: 0.016, Dynamic: 0.004}}
	p.Gemini = map[string]TokenPrice{"g": {Input: 1, Output: 10}}
	p.OpenAI.Embeddings = map[string]EmbeddingPrice{"e": {PerMillion: 0.02}}
	p.OpenAI.VectorStoreGBDay, p.OpenAI.VectorStoreFreeGB = 0.10, 1
	p.CloudRun.VCPUSecond, p.CloudRun.GiBSecond, p.CloudRun.PerMillionRequests = 0.00002, 0.000002, 0.4
	p.Firestore.ReadsPer100k, p.Firestore.WritesPer100k, p.Firestore.DeletesPer100k = 0.06, 0.18, 0.02
	p.PubSub.PerTiB = 40
	p.Storage.StandardGBMonth = 0.02
	p.Workflows.InternalPer1000 = 0.01
	p.Functions = map[string]FunctionSize{"F": {MemoryGiB: 0.5, VCPU: 0.5}} // 0.000011 a busy second
	return p
}

// Three lessons whose Gemini tokens are 1,000 in and 500 out per lesson
// plus 300 in and 10 out per second of video, whose audio is billed by the
// second and whose embeddings are 2,000 tokens whatever their length.
func fixedLedger() []Lesson {
	lesson := func(id, course string, secs float64) Lesson {
		return Lesson{ID: id, Course: course, VideoSeconds: secs, Usage: map[string]float64{
			"speech.chirp_3.seconds":            secs,
			"gemini.g.input_tokens":             1000 + 300*secs,
			"gemini.g.output_tokens":            500 + 10*secs,
			"openai.e.embedding_tokens":         2000,
			"gemini.unknown-model.input_tokens": 5, // no price: named, left out
		}, VectorBytes: 0.6e9, RawBytes: 1e9, ArtifactBytes: 1e6}
	}
	return []Lesson{lesson("L1", "A", 60), lesson("L2", "A", 120), lesson("L3", "B", 180)}
}

func fixedPlatform() (Platform, Idle) {
	plat := Platform{FunctionSeconds: map[string]float64{"F": 10}, Requests: 20, FirestoreWrites: 10, FirestoreDeletes: 2,
		FirestoreReads: 30, PubSubBytes: 5000, WorkflowSteps: 20}
	idle := Idle{Detection: Platform{FunctionSeconds: map[string]float64{"F": 2}, FirestoreReads: 100},
		Sweep: Platform{FunctionSeconds: map[string]float64{"F": 1}}}
	return plat, idle
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.12f, want %.12f", what, got, want)
	}
}

// The arithmetic on a fixed ledger, worked by hand.
func TestComputeOnAFixedLedger(t *testing.T) {
	plat, idle := fixedPlatform()
	a := Assumptions{LessonMinutes: 10, ChangedShare: 0.1, DetectionsPerMonth: 100, SweepsPerMonth: 1000, RawRetentionDays: 15}
	r, err := Compute(fixedPrices(), fixedLedger(), plat, idle, a)
	if err != nil {
		t.Fatal(err)
	}
	// Platform per lesson: 10 busy s × 0.000011 + 20 requests + 10 writes +
	// 2 deletes + 30 reads + 5,000 bytes + 20 steps.
	platform := 10*0.000011 + 20/1e6*0.4 + 10/1e5*0.18 + 2/1e5*0.02 + 30/1e5*0.06 + 5000.0/(1<<40)*40 + 20.0/1000*0.01
	// L1: 1 audio minute, 19,000 tokens in, 1,100 out, 2,000 embedded.
	wantAPI := map[string]float64{"L1": 0.016 + 0.019 + 0.011 + 0.00004, "L2": 0.032 + 0.037 + 0.017 + 0.00004, "L3": 0.048 + 0.055 + 0.023 + 0.00004}
	for _, l := range r.Lessons {
		near(t, l.ID+" API", l.API, wantAPI[l.ID])
		near(t, l.ID+" platform", l.Platform, platform)
		near(t, l.ID+" total", l.Total, wantAPI[l.ID]+platform)
	}
	total := wantAPI["L1"] + wantAPI["L2"] + wantAPI["L3"] + 3*platform
	near(t, "total", r.Total, total)
	if len(r.Courses) != 2 || r.Courses[0].Course != "A" || r.Courses[0].Lessons != 2 {
		t.Fatalf("courses %+v", r.Courses)
	}
	near(t, "course A", r.Courses[0].Total, wantAPI["L1"]+wantAPI["L2"]+2*platform)
	near(t, "course A per hour", r.Courses[0].PerHour, (wantAPI["L1"]+wantAPI["L2"]+2*platform)/180*3600)

	// Per video hour, six 10-minute lessons: 60 audio minutes; 300 × 3,600 +
	// 1,000 × 6 tokens in; 10 × 3,600 + 500 × 6 out; 2,000 × 6 embedded;
	// six lessons' platform.
	perHour := 60*0.016 + 1.086*1 + 0.039*10 + 0.012*0.02 + 6*platform
	near(t, "per video hour", r.PerHourTotal, perHour)
	if !strings.Contains(r.Fit, "fitted") {
		t.Errorf("fit %q: the lessons' lengths differ, the parts should have been fitted", r.Fit)
	}
	if len(r.Unpriced) != 1 || r.Unpriced[0] != "gemini.unknown-model.input_tokens" {
		t.Errorf("unpriced %v, want the unknown model named", r.Unpriced)
	}

	// A month: 10% processed again, 100 idle detections (2 busy s and 100
	// reads each) and 1,000 idle sweeps (1 busy s), 0.8 GB of vector store
	// beyond the free GB for 30 days, 3 MB of artifacts, 10% of 3 GB of raw
	// video kept half a month.
	near(t, "month processing", r.Month.Processing, 0.1*total)
	near(t, "month polling", r.Month.Polling, 100*(2*0.000011+100/1e5*0.06)+1000*0.000011)
	near(t, "month storage", r.Month.Storage, 0.8*30*0.10+0.003*0.02+0.1*3*0.5*0.02)
	near(t, "month total", r.Month.Total, r.Month.Processing+r.Month.Polling+r.Month.Storage)

	// Dynamic batching prices the audio at its own rate, nothing else.
	a.SpeechStrategy = StrategyDynamic
	d, err := Compute(fixedPrices(), fixedLedger(), plat, idle, a)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "per video hour, dynamic batching", d.PerHourTotal, perHour-60*0.016+60*0.004)

	var out bytes.Buffer
	Write(&out, r, 2)
	for _, want := range []string{"Prices as of 2000-01-01", "TOTAL per video hour", "L3", "per month", "gemini.unknown-model.input_tokens"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, out.String())
		}
	}
}

// Lessons all of one length cannot tell a fixed part from a part per
// second: everything is taken as per second, said so.
func TestEqualLengthsFallBackToTheRatio(t *testing.T) {
	ls := []Lesson{
		{ID: "a", VideoSeconds: 100, Usage: map[string]float64{"speech.chirp_3.seconds": 100}},
		{ID: "b", VideoSeconds: 100, Usage: map[string]float64{"speech.chirp_3.seconds": 100}},
	}
	r, err := Compute(fixedPrices(), ls, Platform{}, Idle{}, Assumptions{})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "per video hour", r.PerHourTotal, 60*0.016)
	if !strings.Contains(r.Fit, "ratio") {
		t.Errorf("fit %q, want the ratio named", r.Fit)
	}
	if _, err := Compute(fixedPrices(), ls, Platform{}, Idle{}, Assumptions{SpeechStrategy: "CHEAP"}); err == nil {
		t.Error("an unknown speech strategy was accepted")
	}
}

// The repository's table parses, is dated, prices the default models, and
// sizes every function Terraform deploys as Terraform does.
func TestDefaultTable(t *testing.T) {
	p, err := DefaultPrices()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"speech.chirp_3.seconds", "speech.chirp_2.seconds", "gemini.gemini-3.5-flash.input_tokens",
		"gemini.gemini-3.5-flash.output_tokens", "openai.text-embedding-3-small.embedding_tokens"} {
		if l, err := p.meterLine(m, 1e6, StrategyStandard); err != nil || l.UnitPrice <= 0 {
			t.Errorf("default model meter %s: %+v, %v", m, l, err)
		}
	}
	tf, err := os.ReadFile("../../terraform/functions.tf")
	if err != nil {
		t.Fatal(err)
	}
	spec := regexp.MustCompile(`entry_point\s*=\s*"(\w+)"\s*\n\s*memory\s*=\s*"(\d+)(Mi|Gi)"`)
	found := spec.FindAllStringSubmatch(string(tf), -1)
	if len(found) == 0 {
		t.Fatal("no function spec found in terraform/functions.tf")
	}
	for _, m := range found {
		gib := map[string]float64{"Mi": 1.0 / 1024, "Gi": 1}[m[3]]
		var n float64
		for _, c := range m[2] {
			n = n*10 + float64(c-'0')
		}
		f, ok := p.Functions[m[1]]
		if !ok || math.Abs(f.MemoryGiB-n*gib) > 1e-9 {
			t.Errorf("function %s: table says %+v, Terraform %s%s", m[1], f, m[2], m[3])
		}
	}
}

// The ledger reads the stage outputs the stages write, under their names.
func TestLedgerKeysAreTheStagesOwn(t *testing.T) {
	if outDuration != transcribe.OutDuration || outSize != download.OutSize || outUsageBytes != vectorsync.OutUsageBytes {
		t.Errorf("ledger keys %q %q %q, stages write %q %q %q", outDuration, outSize, outUsageBytes,
			transcribe.OutDuration, download.OutSize, vectorsync.OutUsageBytes)
	}
	l := lessonstate.Lesson{ID: "L1", CourseName: "C", Usage: map[string]float64{"speech.chirp_3.seconds": 61}, Stages: map[string]lessonstate.Stage{
		lessonstate.StageTranscribe: {Outputs: map[string]string{transcribe.OutDuration: "61.5"}},
		lessonstate.StageDownload:   {Outputs: map[string]string{download.OutSize: "1000"}},
		lessonstate.StageSync:       {Outputs: map[string]string{vectorsync.OutUsageBytes: "2000"}},
	}}
	got := FromLessons([]lessonstate.Lesson{l, {ID: "unused"}}, map[string]float64{"L1": 3})
	if len(got) != 1 || got[0].VideoSeconds != 61.5 || got[0].RawBytes != 1000 || got[0].VectorBytes != 2000 || got[0].ArtifactBytes != 3 || got[0].Course != "C" {
		t.Errorf("ledger %+v", got)
	}
	if _, err := DefaultMeasured(); err != nil {
		t.Error(err)
	}
}
