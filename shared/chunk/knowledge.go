package chunk

import (
	"strings"

	"github.com/coursekb/pipeline/shared/artifact"
)

// Knowledge renders knowledge.md: a header describing the lesson (what a
// question about the course, its level or its prerequisites retrieves),
// then each chunk as a section under its Heading, in order. The sections are
// what StoreChunking sizes the vector store's chunks for.
func Knowledge(l Lesson, e artifact.Enrichment, chunks []artifact.Chunk) []byte {
	var b strings.Builder
	title := oneLine(l.Title)
	if title == "" {
		title = "Lección " + oneLine(l.LessonID)
	}
	b.WriteString("# " + title + "\n\n")

	var cats []string
	for _, c := range e.Categories {
		if n := oneLine(c.Name); n != "" {
			cats = append(cats, n)
		}
	}
	var keywords []string
	for _, k := range e.Keywords {
		if k = oneLine(k); k != "" {
			keywords = append(keywords, k)
		}
	}
	fields := []struct{ name, value string }{
		{"Curso", oneLine(l.CourseTitle)},
		{"Módulo", oneLine(l.ModuleTitle)},
		{"Lección", oneLine(l.Title)},
		{"Nivel", oneLine(e.Level)},
		{"Categorías", strings.Join(cats, ", ")},
		{"Palabras clave", strings.Join(keywords, ", ")},
		{"Enlace", oneLine(l.URL)},
	}
	for _, f := range fields {
		if f.value != "" {
			b.WriteString("- " + f.name + ": " + f.value + "\n")
		}
	}

	if s := strings.TrimSpace(e.Summary); s != "" {
		b.WriteString("\n## Resumen\n\n" + escapeHeadings(s) + "\n")
	}
	list(&b, "Objetivos de aprendizaje", e.Objectives)
	list(&b, "Requisitos previos", e.Prerequisites)

	for _, c := range chunks {
		b.WriteString("\n" + Heading(c.Start, c.End) + "\n\n")
		b.WriteString(escapeHeadings(c.Text))
		b.WriteString("\n")
	}
	return []byte(b.String())
}

func list(b *strings.Builder, name string, items []string) {
	var lines []string
	for _, it := range items {
		if it = oneLine(it); it != "" {
			lines = append(lines, "- "+it)
		}
	}
	if len(lines) > 0 {
		b.WriteString("\n## " + name + "\n\n" + strings.Join(lines, "\n") + "\n")
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// escapeHeadings turns any line that would read as a chunk heading into
// Markdown's escaped "\##", so ParseTimeRange finds only real headings.
// Slide text or code showing this very document could otherwise do it.
func escapeHeadings(text string) string {
	if !strings.Contains(text, "## [") {
		return text
	}
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		if headingLine.MatchString(strings.TrimSuffix(line, "\r")) {
			lines[i] = `\` + line
		}
	}
	return strings.Join(lines, "\n")
}
