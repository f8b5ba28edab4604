package cost

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/coursekb/pipeline/shared/lessonstate"
)

// Output keys of the stage records the ledger reads sizes from: the
// transcribe stage's audio length (transcribe.OutDuration), the download's
// size (download.OutSize) and the sync's vector-store bytes
// (vectorsync.OutUsageBytes). A test keeps them equal to those constants.
const (
	outDuration   = "durationSeconds"
	outSize       = "size"
	outUsageBytes = "usageBytes"
)

// FromLessons is the ledger of every lesson that used something (a lesson
// that failed after a paid call cost money too), with its length and sizes
// from its stage records; artifacts gives the artifacts' bytes by lesson,
// when known.
func FromLessons(lessons []lessonstate.Lesson, artifacts map[string]float64) []Lesson {
	var out []Lesson
	for _, l := range lessons {
		if len(l.Usage) == 0 {
			continue
		}
		num := func(stage, key string) float64 {
			v, _ := strconv.ParseFloat(l.Stages[stage].Outputs[key], 64)
			return v
		}
		course := l.CourseName
		if course == "" {
			course = l.CourseID
		}
		out = append(out, Lesson{
			ID: l.ID, Course: course, Usage: l.Usage,
			VideoSeconds:  num(lessonstate.StageTranscribe, outDuration),
			VectorBytes:   num(lessonstate.StageSync, outUsageBytes),
			RawBytes:      num(lessonstate.StageDownload, outSize),
			ArtifactBytes: artifacts[l.ID],
		})
	}
	return out
}

// Measured is what a load run measured of the platform: its usage per
// lesson and while idle. `pipeline load` writes it; `pipeline cost` reads
// it back.
type Measured struct {
	// At is when, and Run what run, measured it.
	At       string   `json:"at"`
	Run      string   `json:"run"`
	Platform Platform `json:"platform"`
	Idle     Idle     `json:"idle"`
}

//go:embed platform.json
var measuredJSON []byte

// DefaultMeasured is the platform usage the repository keeps
// (platform.json: the 100-lesson clean load run's, dated), for a cost
// report made without a load run of its own.
func DefaultMeasured() (Measured, error) {
	var m Measured
	if err := json.Unmarshal(measuredJSON, &m); err != nil {
		return m, fmt.Errorf("cost: platform.json: %w", err)
	}
	return m, nil
}

// ReadMeasured reads a file WriteMeasured wrote.
func ReadMeasured(path string) (Measured, error) {
	var m Measured
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("cost: %s: %w", path, err)
	}
	return m, nil
}

// WriteMeasured writes m to path as indented JSON.
func WriteMeasured(path string, m Measured) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
