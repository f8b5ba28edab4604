package chunk

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// SectionOverheadTokens bounds what a chunk's section in knowledge.md adds
// to the chunk's own tokens: the heading line (14 tokens for any time under
// 100 hours) and the blank lines around it, which may merge with the text's
// last punctuation. knowledge_test.go checks the bound on rendered
// documents.
const SectionOverheadTokens = 20

// headingLine matches a chunk heading, and nothing else a knowledge document
// holds: Knowledge escapes any line of text that would match it.
var headingLine = regexp.MustCompile(`^## \[(\d{2,}):([0-5]\d):([0-5]\d)–(\d{2,}):([0-5]\d):([0-5]\d)\]$`)

// Heading is a chunk's heading in knowledge.md, "## [hh:mm:ss–hh:mm:ss]":
// whole seconds, the start rounded down and the end up, so the range covers
// the chunk and a student can jump to its start.
func Heading(start, end float64) string {
	return "## [" + clock(math.Floor(start)) + "–" + clock(math.Ceil(end)) + "]"
}

func clock(t float64) string {
	s := int64(t)
	return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60)
}

// ParseTimeRange reads the time range, in seconds, of the first chunk
// heading in text: a line that is exactly a Heading. A chunk the vector
// store retrieves is a window of knowledge.md, and OpenAI's citations name
// only the file, so its heading is where its time comes from. Text before
// that heading in the window belongs to the chunk before, whose heading the
// window does not hold.
func ParseTimeRange(text string) (start, end float64, ok bool) {
	for line := range strings.SplitSeq(text, "\n") {
		m := headingLine.FindStringSubmatch(strings.TrimSuffix(line, "\r"))
		if m == nil {
			continue
		}
		start, ok1 := seconds(m[1:4])
		end, ok2 := seconds(m[4:7])
		if ok1 && ok2 && start <= end {
			return start, end, true
		}
	}
	return 0, 0, false
}

func seconds(hms []string) (float64, bool) {
	var t int64
	for _, f := range hms {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || t > math.MaxInt32 {
			return 0, false
		}
		t = t*60 + n
	}
	return float64(t), true
}
