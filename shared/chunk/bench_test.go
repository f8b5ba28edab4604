package chunk

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkSplit10h chunks a 10-hour lecture (lecture: about 90,000 words,
// 150 a minute, slides every few minutes, a third with code) and measures it
// against its baseline in the same run: one tokenizer pass over the
// lecture's spoken text (Transcript.Text), what counting it costs. The
// chunker tokenizes each distinct word once (see counts), so its cost
// follows the lesson's vocabulary; with every word distinct, which no speech
// is, it makes one tokenizer call a word, about one and a half to two
// baselines.
//
// Run: go test -run '^$' -bench Split10h -benchtime 1x ./shared/chunk/
//
// Metrics:
//
//	ratio          Split time / baseline time, best of 3 alternating rounds each (target <= 1.5)
//	allocs/chunk   Split's allocations (the tokenizer's included) / chunks
//	Split-ns       Split alone, best round
//	baseline-ns    the baseline alone, best round
//	chunks         chunks in the lecture
//	distinct-words/word  the lecture's vocabulary over its length (about 0.12,
//	               as in real speech): the chunker tokenizes each distinct word once
func BenchmarkSplit10h(b *testing.B) {
	tr, an := lecture(10, 600)
	s := newSplitter(b, DefaultOptions().MaxTokens, DefaultOptions().OverlapTokens)
	text := tr.Text

	best := func(cur, d time.Duration) time.Duration {
		if cur == 0 || d < cur {
			return d
		}
		return cur
	}
	var split, base time.Duration
	var allocs uint64
	chunks := 0
	var ms runtime.MemStats
	for b.Loop() {
		for range 3 {
			t0 := time.Now()
			if s.tok.Count(text) == 0 {
				b.Fatal("no tokens")
			}
			base = best(base, time.Since(t0))

			runtime.ReadMemStats(&ms)
			before := ms.Mallocs
			t0 = time.Now()
			out, err := s.Split(testLesson, tr, an)
			d := time.Since(t0)
			runtime.ReadMemStats(&ms)
			if err != nil {
				b.Fatal(err)
			}
			split = best(split, d)
			allocs, chunks = ms.Mallocs-before, len(out)
		}
	}
	b.ReportMetric(float64(split)/float64(base), "ratio")
	b.ReportMetric(float64(allocs)/float64(chunks), "allocs/chunk")
	b.ReportMetric(float64(split.Nanoseconds()), "Split-ns")
	b.ReportMetric(float64(base.Nanoseconds()), "baseline-ns")
	b.ReportMetric(float64(chunks), "chunks")
	distinct := map[string]bool{}
	for _, w := range tr.Words {
		distinct[w.Text] = true
	}
	b.ReportMetric(float64(len(distinct))/float64(len(tr.Words)), "distinct-words/word")
}
