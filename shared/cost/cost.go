package cost

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Lesson is one lesson's ledger and sizes, as the stages recorded them.
type Lesson struct {
	ID     string
	Course string
	// VideoSeconds is the lesson's length (its audio, as transcribed).
	VideoSeconds float64
	// Usage is the cost ledger (lessonstate.Lesson.Usage).
	Usage map[string]float64
	// VectorBytes is the knowledge file's size in the vector store;
	// RawBytes the source video's; ArtifactBytes the artifacts' (0 when
	// unknown).
	VectorBytes, RawBytes, ArtifactBytes float64
}

// Platform is the platform's usage: per lesson processed (measured at the
// doors of a load run, divided by its lessons), or of one idle run.
type Platform struct {
	// FunctionSeconds is busy time by entry point; Requests the requests.
	FunctionSeconds map[string]float64 `json:"functionSeconds"`
	Requests        float64            `json:"requests"`
	// Firestore documents read, written and deleted.
	FirestoreReads   float64 `json:"firestoreReads"`
	FirestoreWrites  float64 `json:"firestoreWrites"`
	FirestoreDeletes float64 `json:"firestoreDeletes"`
	// PubSubBytes is billable throughput: publish and delivery, each
	// request counted at least at the minimum.
	PubSubBytes float64 `json:"pubsubBytes"`
	// WorkflowSteps is the lesson-pipeline workflow's steps.
	WorkflowSteps float64 `json:"workflowSteps"`
	// Source says where the figures come from.
	Source string `json:"source"`
}

// Idle is what the pipeline costs while nothing changes: one detection run
// that finds nothing new, and one sweep.
type Idle struct {
	Detection Platform `json:"detection"`
	Sweep     Platform `json:"sweep"`
}

// Assumptions are what the report cannot measure.
type Assumptions struct {
	// SpeechStrategy is STANDARD or DYNAMIC_BATCHING.
	SpeechStrategy string
	// LessonMinutes is a real lesson's mean length: what the per-lesson
	// costs are spread over for the cost per video hour (default 10).
	LessonMinutes float64
	// ChangedShare is the share of the catalog (re)processed each month:
	// new lessons and new videos (default 0.10).
	ChangedShare float64
	// DetectionsPerMonth and SweepsPerMonth are the schedules' runs
	// (defaults 2,880: every 15 minutes; 8,640: every 5 minutes).
	DetectionsPerMonth, SweepsPerMonth float64
	// RawRetentionDays is how long a source video stays in the raw bucket
	// (its lifecycle rule; default 30).
	RawRetentionDays float64
}

func (a Assumptions) withDefaults() Assumptions {
	if a.SpeechStrategy == "" {
		a.SpeechStrategy = StrategyStandard
	}
	if a.LessonMinutes <= 0 {
		a.LessonMinutes = 10
	}
	if a.ChangedShare <= 0 {
		a.ChangedShare = 0.10
	}
	if a.DetectionsPerMonth <= 0 {
		a.DetectionsPerMonth = 30 * 24 * 4
	}
	if a.SweepsPerMonth <= 0 {
		a.SweepsPerMonth = 30 * 24 * 12
	}
	if a.RawRetentionDays <= 0 {
		a.RawRetentionDays = 30
	}
	return a
}

// Line is one priced quantity.
type Line struct {
	Item      string  `json:"item"`
	Usage     float64 `json:"usage"`
	Unit      string  `json:"unit"`
	UnitPrice float64 `json:"unitPrice"`
	Cost      float64 `json:"cost"`
}

func (l Line) priced() Line { l.Cost = l.Usage * l.UnitPrice; return l }

// LessonCost is one lesson's cost.
type LessonCost struct {
	ID           string  `json:"id"`
	Course       string  `json:"course"`
	VideoSeconds float64 `json:"videoSeconds"`
	// API is what its ledger costs; Platform its share of the platform.
	API      float64 `json:"api"`
	Platform float64 `json:"platform"`
	Total    float64 `json:"total"`
}

// CourseCost sums a course's lessons.
type CourseCost struct {
	Course       string  `json:"course"`
	Lessons      int     `json:"lessons"`
	VideoSeconds float64 `json:"videoSeconds"`
	Total        float64 `json:"total"`
	PerHour      float64 `json:"perHour"`
}

// Month is a month of running the pipeline on the catalog measured.
type Month struct {
	Processing float64 `json:"processing"` // ChangedShare of the catalog processed again
	Polling    float64 `json:"polling"`    // idle detections and sweeps
	Storage    float64 `json:"storage"`    // vector store, artifacts, raw videos
	Total      float64 `json:"total"`
	Lines      []Line  `json:"lines"`
}

// Report is the cost of what was measured.
type Report struct {
	AsOf        string       `json:"asOf"`
	Assumptions Assumptions  `json:"assumptions"`
	Lessons     []LessonCost `json:"lessons"`
	Courses     []CourseCost `json:"courses"`
	// PerLesson is the platform's lines for one lesson.
	PerLesson []Line `json:"perLessonPlatform"`
	// PerHour prices one hour of video: each ledger meter fitted as a
	// fixed part per lesson plus a part per second of video (Fit says
	// how), the lesson parts spread over lessons of LessonMinutes, and the
	// platform's per-lesson usage likewise.
	PerHour      []Line  `json:"perHour"`
	PerHourTotal float64 `json:"perHourTotal"`
	Fit          string  `json:"fit"`
	Month        Month   `json:"month"`
	VideoSeconds float64 `json:"videoSeconds"`
	Total        float64 `json:"total"`
	// Unpriced names meters the table has no price for (left out).
	Unpriced []string `json:"unpriced,omitempty"`
}

// Compute prices the lessons' ledgers and the platform's usage.
func Compute(p Prices, lessons []Lesson, plat Platform, idle Idle, a Assumptions) (Report, error) {
	a = a.withDefaults()
	if a.SpeechStrategy != StrategyStandard && a.SpeechStrategy != StrategyDynamic {
		return Report{}, fmt.Errorf("cost: speech strategy %q is not %s or %s", a.SpeechStrategy, StrategyStandard, StrategyDynamic)
	}
	if len(lessons) == 0 {
		return Report{}, errors.New("cost: no lesson with a ledger to price")
	}
	r := Report{AsOf: p.AsOf, Assumptions: a}
	unpriced := map[string]bool{}
	price := func(meter string, qty float64) Line {
		l, err := p.meterLine(meter, qty, a.SpeechStrategy)
		if err != nil {
			unpriced[meter] = true
		}
		return l
	}

	r.PerLesson = p.platformLines(plat)
	platformPerLesson := total(r.PerLesson)
	courses := map[string]*CourseCost{}
	for _, l := range lessons {
		lc := LessonCost{ID: l.ID, Course: l.Course, VideoSeconds: l.VideoSeconds, Platform: platformPerLesson}
		for _, m := range slices.Sorted(maps.Keys(l.Usage)) {
			lc.API += price(m, l.Usage[m]).Cost
		}
		lc.Total = lc.API + lc.Platform
		r.Lessons = append(r.Lessons, lc)
		r.VideoSeconds += l.VideoSeconds
		r.Total += lc.Total
		c := courses[l.Course]
		if c == nil {
			c = &CourseCost{Course: l.Course}
			courses[l.Course] = c
		}
		c.Lessons++
		c.VideoSeconds += l.VideoSeconds
		c.Total += lc.Total
	}
	for _, c := range courses {
		if c.VideoSeconds > 0 {
			c.PerHour = c.Total / c.VideoSeconds * 3600
		}
		r.Courses = append(r.Courses, *c)
	}
	sort.Slice(r.Courses, func(i, j int) bool { return r.Courses[i].Course < r.Courses[j].Course })

	// Per video hour.
	lessonsPerHour := 60 / a.LessonMinutes
	meters := map[string]bool{}
	for _, l := range lessons {
		for m := range l.Usage {
			meters[m] = true
		}
	}
	fits := map[string]bool{}
	for _, m := range slices.Sorted(maps.Keys(meters)) {
		fixed, perSecond, how := fitMeter(lessons, m)
		fits[how] = true
		r.PerHour = append(r.PerHour, price(m, perSecond*3600+fixed*lessonsPerHour))
	}
	for _, l := range r.PerLesson {
		l.Usage *= lessonsPerHour
		r.PerHour = append(r.PerHour, l.priced())
	}
	r.PerHourTotal = total(r.PerHour)
	r.Fit = fitNote(fits)

	r.Month = p.month(r, lessons, idle, a)
	for m := range unpriced {
		r.Unpriced = append(r.Unpriced, m)
	}
	slices.Sort(r.Unpriced)
	return r, nil
}

// platformLines prices a Platform's usage.
func (p Prices) platformLines(plat Platform) []Line {
	var lines []Line
	for _, entry := range slices.Sorted(maps.Keys(plat.FunctionSeconds)) {
		perSecond, ok := p.functionSecond(entry)
		if !ok {
			continue
		}
		lines = append(lines, Line{Item: "Cloud Run function " + entry, Usage: plat.FunctionSeconds[entry], Unit: "busy s", UnitPrice: perSecond}.priced())
	}
	add := func(item string, usage float64, unit string, unitPrice float64) {
		if usage > 0 {
			lines = append(lines, Line{Item: item, Usage: usage, Unit: unit, UnitPrice: unitPrice}.priced())
		}
	}
	add("Cloud Run requests", plat.Requests/1e6, "M requests", p.CloudRun.PerMillionRequests)
	add("Firestore document writes", plat.FirestoreWrites/1e5, "100k docs", p.Firestore.WritesPer100k)
	add("Firestore document deletes", plat.FirestoreDeletes/1e5, "100k docs", p.Firestore.DeletesPer100k)
	add("Firestore document reads", plat.FirestoreReads/1e5, "100k docs", p.Firestore.ReadsPer100k)
	add("Pub/Sub throughput", plat.PubSubBytes/(1<<40), "TiB", p.PubSub.PerTiB)
	add("Workflows steps", plat.WorkflowSteps/1000, "1k steps", p.Workflows.InternalPer1000)
	return lines
}

// month prices a month of the catalog: a share processed again, the idle
// runs, and what is stored.
func (p Prices) month(r Report, lessons []Lesson, idle Idle, a Assumptions) Month {
	var m Month
	m.Processing = a.ChangedShare * r.Total
	m.Lines = append(m.Lines, Line{Item: fmt.Sprintf("processing %.0f%% of the catalog again", 100*a.ChangedShare), Usage: a.ChangedShare, Unit: "catalogs", UnitPrice: r.Total}.priced())
	det := total(p.platformLines(idle.Detection))
	sw := total(p.platformLines(idle.Sweep))
	m.Lines = append(m.Lines,
		Line{Item: "idle detection runs", Usage: a.DetectionsPerMonth, Unit: "runs", UnitPrice: det}.priced(),
		Line{Item: "idle sweeps", Usage: a.SweepsPerMonth, Unit: "sweeps", UnitPrice: sw}.priced())
	m.Polling = a.DetectionsPerMonth*det + a.SweepsPerMonth*sw
	var vector, artifacts, raw float64
	for _, l := range lessons {
		vector += l.VectorBytes
		artifacts += l.ArtifactBytes
		raw += l.RawBytes
	}
	const gb = 1e9
	vecGB := max(0, vector/gb-p.OpenAI.VectorStoreFreeGB)
	storage := []Line{
		{Item: fmt.Sprintf("vector store (beyond %g GB free)", p.OpenAI.VectorStoreFreeGB), Usage: vecGB * 30, Unit: "GB-days", UnitPrice: p.OpenAI.VectorStoreGBDay},
		{Item: "artifacts bucket", Usage: artifacts / gb, Unit: "GB-months", UnitPrice: p.Storage.StandardGBMonth},
		{Item: fmt.Sprintf("raw videos (changed share, kept %g days)", a.RawRetentionDays), Usage: a.ChangedShare * raw / gb * min(a.RawRetentionDays, 30) / 30, Unit: "GB-months", UnitPrice: p.Storage.StandardGBMonth},
	}
	for _, l := range storage {
		l = l.priced()
		m.Storage += l.Cost
		m.Lines = append(m.Lines, l)
	}
	m.Total = m.Processing + m.Polling + m.Storage
	return m
}

func total(lines []Line) float64 {
	var t float64
	for _, l := range lines {
		t += l.Cost
	}
	return t
}

// fitMeter splits a meter's usage into a fixed part per lesson and a part
// per second of video, by least squares over the lessons (usage = fixed +
// perSecond × seconds). With too few lessons or lengths too alike to tell
// the parts apart, or a fit that comes out negative, it falls back to the
// ratio (all of it per second, through the origin).
func fitMeter(lessons []Lesson, meter string) (fixed, perSecond float64, how string) {
	var n, sx, sy, sxx, sxy float64
	for _, l := range lessons {
		if l.VideoSeconds <= 0 {
			continue
		}
		x, y := l.VideoSeconds, l.Usage[meter]
		n++
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	if n == 0 || sx == 0 {
		return 0, 0, "none"
	}
	den := n*sxx - sx*sx
	if n >= 3 && den > 1e-9*n*sxx {
		perSecond = (n*sxy - sx*sy) / den
		fixed = (sy - perSecond*sx) / n
		if perSecond >= 0 && fixed >= -1e-9*cmp.Or(sy, 1) {
			return max(fixed, 0), perSecond, "fit"
		}
		if perSecond < 0 {
			return sy / n, 0, "fixed"
		}
	}
	return 0, sxy / sxx, "ratio"
}

func fitNote(hows map[string]bool) string {
	switch {
	case len(hows) == 1 && hows["fit"]:
		return "each meter fitted as a fixed part per lesson plus a part per second of video (least squares over the lessons)"
	case hows["fit"]:
		return "meters fitted as fixed per lesson plus per second of video where the lessons' lengths allow it; the others as a ratio to the video's length"
	}
	return "each meter as a ratio to the video's length (the lessons' lengths were too alike to fit a fixed part)"
}
