package sample

import (
	"context"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coursekb/pipeline/shared/events"
)

// The load course is the same for the same seed, has the lessons asked
// for in products of one school each, and pages the local engines can
// answer for: valid ids, narration at a speaking pace, ordered slides.
func TestLoadCourseShape(t *testing.T) {
	o := LoadOptions{Lessons: 60, Seed: 7, PerProduct: 25}
	cat, videos := LoadCourse(o)
	again, _ := LoadCourse(o)
	if !reflect.DeepEqual(cat, again) {
		t.Fatal("the same seed made two different courses")
	}
	if other, _ := LoadCourse(LoadOptions{Lessons: 60, Seed: 8}); reflect.DeepEqual(cat, other) {
		t.Error("two seeds made the same course")
	}
	if len(videos) != 60 || len(cat.Products) != 3 {
		t.Fatalf("%d videos in %d products, want 60 in 3", len(videos), len(cat.Products))
	}
	schools := map[string]bool{}
	for _, p := range cat.Products {
		schools[p.School] = true
	}
	if !schools["programacion"] || !schools["marketing"] {
		t.Errorf("schools %v, want both of the taxonomy's", schools)
	}
	ids := map[string]bool{}
	i := 0
	cat.Pages(func(_ Product, _ Module, pg Page) {
		v := videos[i]
		i++
		if v.Page.PageID != pg.PageID || !events.ValidLessonID(pg.PageID) || ids[pg.PageID] {
			t.Errorf("page %q: not a valid, unique id in video order", pg.PageID)
		}
		ids[pg.PageID] = true
		if v.Seconds < 4 || v.Seconds > 10 {
			t.Errorf("%s: %g s, want 4 to 10", pg.PageID, v.Seconds)
		}
		if n := len(strings.Fields(pg.Narration)); math.Abs(float64(n)-2.5*v.Seconds) > 1 {
			t.Errorf("%s: %d words for %g s, want about 2.5 a second", pg.PageID, n, v.Seconds)
		}
		if len(pg.Slides) != 2 || pg.Slides[1].At <= pg.Slides[0].At || !pg.HasVideo() {
			t.Errorf("%s: slides %+v", pg.PageID, pg.Slides)
		}
	})
}

// Load videos are real MP4s of the length asked for, with a mono audio
// track unless asked for none, and come from the cache the second time.
func TestGenerateLoadVideos(t *testing.T) {
	requireTools(t)
	_, videos := LoadCourse(LoadOptions{Lessons: 2, Seed: 3})
	videos[1].NoAudio = true
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	made, err := GenerateLoad(ctx, videos, dir, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range made {
		p := ffprobe(t, v.Path)
		d, _ := strconv.ParseFloat(p.Format.Duration, 64)
		if math.Abs(d-videos[i].Seconds) > 0.5 {
			t.Errorf("%s: %g s long, want %g", v.PageID, d, videos[i].Seconds)
		}
		audio := 0
		for _, s := range p.Streams {
			if s.CodecType == "audio" {
				audio++
			}
		}
		if want := map[bool]int{true: 0, false: 1}[videos[i].NoAudio]; audio != want {
			t.Errorf("%s: %d audio streams, want %d", v.PageID, audio, want)
		}
		st, err := os.Stat(v.Path)
		if err != nil || st.Size() != v.Size || v.MD5 == "" {
			t.Errorf("%s: size %d / %v, md5 %q", v.PageID, v.Size, err, v.MD5)
		}
	}
	before, _ := os.Stat(made[0].Path)
	again, err := GenerateLoad(ctx, videos, dir, GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(again[0].Path)
	if !after.ModTime().Equal(before.ModTime()) || again[0].MD5 != made[0].MD5 {
		t.Error("a cached video was made again")
	}
}
