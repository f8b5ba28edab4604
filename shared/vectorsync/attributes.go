package vectorsync

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coursekb/pipeline/shared/artifact"
	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Attribute keys of a knowledge file in its school's vector store: what
// file_search filters on (shared/ask) and how the stage finds a lesson's
// files again after a crash.
const (
	AttrSchool     = "school"
	AttrCourse     = "course"
	AttrModule     = "module"
	AttrLesson     = "lesson"
	AttrVersion    = "version" // a number
	AttrLevel      = "level"
	AttrCategories = "categories" // category ids, comma-joined
	AttrTitle      = "title"
)

// OpenAI's limits on attributes (DESIGN.md section 5).
const (
	maxAttributes    = 16
	maxAttrKeyRunes  = 64
	maxAttrTextRunes = 512
)

// Attributes are a lesson version's attributes. Values are strings but for
// the version, a number; empty values are left out (a lesson without a
// level has no level to filter on). Titles longer than OpenAI allows are
// cut at a character; categories are kept whole, as many as fit, in the
// enrichment's order (best first).
func Attributes(l lessonstate.Lesson, version int, e artifact.Enrichment) (map[string]any, error) {
	a := map[string]any{AttrVersion: float64(version)}
	put := func(k, v string) {
		if v = strings.TrimSpace(v); v != "" {
			a[k] = v
		}
	}
	put(AttrSchool, l.School)
	put(AttrCourse, l.CourseID)
	put(AttrModule, l.ModuleID)
	put(AttrLesson, l.ID)
	put(AttrLevel, e.Level)
	put(AttrTitle, truncateRunes(strings.Join(strings.Fields(l.Title), " "), maxAttrTextRunes))
	var cats []string
	n := 0
	for _, c := range e.Categories {
		id := strings.TrimSpace(c.ID)
		if id == "" || strings.Contains(id, ",") || slices.Contains(cats, id) {
			continue
		}
		add := utf8.RuneCountInString(id)
		if len(cats) > 0 {
			add++ // the comma
		}
		if n+add > maxAttrTextRunes {
			break
		}
		cats = append(cats, id)
		n += add
	}
	put(AttrCategories, strings.Join(cats, ","))
	if err := ValidateAttributes(a); err != nil {
		return nil, fmt.Errorf("attributes of lesson %s v%d: %w", l.ID, version, err)
	}
	return a, nil
}

// ValidateAttributes applies OpenAI's limits before anything is sent: at
// most 16 keys, keys up to 64 characters, values strings up to 512
// characters, numbers or booleans.
func ValidateAttributes(a map[string]any) error {
	var bad []string
	if len(a) > maxAttributes {
		bad = append(bad, fmt.Sprintf("%d keys, at most %d allowed", len(a), maxAttributes))
	}
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if k == "" || utf8.RuneCountInString(k) > maxAttrKeyRunes {
			bad = append(bad, fmt.Sprintf("key %q is empty or longer than %d characters", k, maxAttrKeyRunes))
		}
		switch v := a[k].(type) {
		case string:
			if n := utf8.RuneCountInString(v); n > maxAttrTextRunes {
				bad = append(bad, fmt.Sprintf("%s is %d characters, at most %d allowed", k, n, maxAttrTextRunes))
			}
		case float64, bool:
		default:
			bad = append(bad, fmt.Sprintf("%s is a %T, not a string, number or boolean", k, v))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// FileName is the name a lesson version's knowledge document is uploaded
// under (DESIGN.md section 5): a real .md name, which file_search reads, and
// the key by which an upload that crashed before it was recorded is found.
func FileName(lessonID string, version int) string {
	return fmt.Sprintf("lesson-%s-v%d.md", lessonID, version)
}

var fileNamePattern = regexp.MustCompile(`^lesson-([A-Za-z0-9_-]+)-v([0-9]+)\.md$`)

// ParseFileName reads a knowledge file's name back. Lesson ids may hold
// '-', so the version is the last "-v<digits>" before ".md".
func ParseFileName(name string) (lessonID string, version int, ok bool) {
	m := fileNamePattern.FindStringSubmatch(name)
	if m == nil {
		return "", 0, false
	}
	v, err := strconv.Atoi(m[2])
	if err != nil || v < 1 {
		return "", 0, false
	}
	return m[1], v, true
}

// lessonOf reads the lesson and version a store file's attributes name;
// ok is false when they name none.
func lessonOf(sf StoreFile) (lessonID string, version int, ok bool) {
	id, _ := sf.Attributes[AttrLesson].(string)
	switch v := sf.Attributes[AttrVersion].(type) {
	case float64:
		version = int(v)
	case string:
		version, _ = strconv.Atoi(v)
	}
	return id, version, id != "" && version >= 1
}
