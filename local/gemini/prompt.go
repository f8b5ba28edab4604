package gemini

import (
	"encoding/json"
	"regexp"
	"strings"

	production "github.com/coursekb/pipeline/shared/enrich"
)

// Section markers of an enrichment prompt, as the enricher writes it. They
// are the enricher's own constants (shared/enrich), re-exported so that this
// server and the enricher cannot drift apart: each starts a line; the
// section is the rest of that line and the lines after it, up to the next
// line that starts with a marker. Text before the first marker (the
// instructions) is not part of any section, and a marker repeated later
// wins, so the instructions may quote the markers at the start of a line.
// Only TÍTULO: or TRANSCRIPCIÓN: is required; the others refine the answer.
const (
	// MarkerLesson is followed by the lesson's page id (optionally " v" and
	// its version): it names the lesson for counters and faults. Without
	// it the server finds the lesson by its title.
	MarkerLesson = production.MarkerLesson
	// MarkerTitle is followed by the lesson's title.
	MarkerTitle = production.MarkerTitle
	// MarkerCourse is followed by the course's name.
	MarkerCourse = production.MarkerCourse
	// MarkerModule is followed by the module's order and name, order first
	// ("2 · Funciones"); the order is one of the level's cues.
	MarkerModule = production.MarkerModule
	// MarkerEarlier is followed by the titles of the course's earlier
	// lessons, one a line: those the transcript mentions are prerequisites.
	MarkerEarlier = production.MarkerEarlier
	// MarkerTranscript is followed by the transcript's text.
	MarkerTranscript = production.MarkerTranscript
	// MarkerVisuals is followed by the lesson's visual elements: best as the
	// JSON array of artifact.VisualElement that analysis.json holds, or one
	// element a line as "kind [start–end] Title: text", code on the
	// indented or fenced lines after a code element's line.
	MarkerVisuals = production.MarkerVisuals
)

// Markers lists every section marker, in the order a prompt gives them.
var Markers = production.Markers

// sectionOK returns the text of the prompt's last section with marker, and
// whether there is one.
func sectionOK(prompt, marker string) (string, bool) {
	lines := strings.Split(prompt, "\n")
	found, start := false, 0
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, " \t"), marker) {
			found, start = true, i
		}
	}
	if !found {
		return "", false
	}
	first := strings.TrimLeft(lines[start], " \t")[len(marker):]
	body := []string{first}
	for _, l := range lines[start+1:] {
		if startsWithMarker(l) {
			break
		}
		body = append(body, l)
	}
	return strings.TrimSpace(strings.Join(body, "\n")), true
}

// section is sectionOK's text alone.
func section(prompt, marker string) string {
	s, _ := sectionOK(prompt, marker)
	return s
}

func startsWithMarker(line string) bool {
	l := strings.TrimLeft(line, " \t")
	for _, m := range Markers {
		if strings.HasPrefix(l, m) {
			return true
		}
	}
	return false
}

// lessonMarker is the page id after LECCIÓN:, "" without one.
func lessonMarker(prompt string) string {
	f := strings.Fields(section(prompt, MarkerLesson))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// fence matches a Markdown code fence line (```json, ```python, ```).
var fence = regexp.MustCompile("^\\s*```")

// parseVisuals reads the ELEMENTOS VISUALES: section: JSON (an array of
// elements or {"elements": [...]}) or the line form.
func parseVisuals(sec string) []element {
	body := strings.TrimSpace(sec)
	if lines := strings.Split(body, "\n"); len(lines) >= 2 && fence.MatchString(lines[0]) && fence.MatchString(lines[len(lines)-1]) {
		body = strings.TrimSpace(strings.Join(lines[1:len(lines)-1], "\n"))
	}
	var els []element
	if strings.HasPrefix(body, "[") && json.Unmarshal([]byte(body), &els) == nil {
		return els
	}
	var wrapped analysisAnswer
	if strings.HasPrefix(body, "{") && json.Unmarshal([]byte(body), &wrapped) == nil {
		return wrapped.Elements
	}
	return visualLines(body)
}

var (
	visualHead = regexp.MustCompile(`(?i)^\s*(?:[-*•]\s*)?\[?(slide|code|diagram|demonstration|concept)\]?(?:\s+|$|:)(.*)$`)
	timeSpan   = regexp.MustCompile(`^\s*[\[(]?\s*[0-9][0-9.:]*\s*s?\s*(?:[–—-]|a)\s*[0-9][0-9.:]*\s*s?\s*[\])]?`)
)

// visualLines reads the line form: "kind [start–end] Title: text", with
// indented or fenced lines after a code line as its code and other lines
// as more text of the element before.
func visualLines(body string) []element {
	var els []element
	inFence := false
	for _, l := range strings.Split(body, "\n") {
		if fence.MatchString(l) {
			inFence = !inFence
			continue
		}
		cur := len(els) - 1
		if m := visualHead.FindStringSubmatch(l); m != nil && !inFence {
			rest := timeSpan.ReplaceAllString(m[2], "")
			rest = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(rest), ":—-"))
			e := element{Kind: strings.ToLower(m[1])}
			if t, x, ok := strings.Cut(rest, ": "); ok {
				e.Title, e.Text = strings.TrimSpace(t), strings.TrimSpace(x)
			} else {
				e.Title = rest
			}
			els = append(els, e)
			continue
		}
		if cur < 0 || strings.TrimSpace(l) == "" {
			continue
		}
		if inFence || (els[cur].Kind == "code" && (strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t"))) {
			els[cur].Code = strings.TrimPrefix(els[cur].Code+"\n"+l, "\n")
			continue
		}
		els[cur].Text = strings.TrimSpace(els[cur].Text + " " + strings.TrimSpace(l))
	}
	return els
}
