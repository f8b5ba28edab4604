package cost

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Write prints the report: the price table's date and assumptions, the cost
// per video hour line by line, per course, the dearest lessons, and a month.
func Write(w io.Writer, r Report, maxLessons int) {
	a := r.Assumptions
	fmt.Fprintf(w, "Prices as of %s (shared/cost/prices.yaml; USD, list prices, free tiers left out)\n", r.AsOf)
	fmt.Fprintf(w, "Assumptions: Speech-to-Text %s; lessons of %g min on average; %.0f%% of the catalog processed again each month; "+
		"detection every %.0f min, sweep every %.0f min; raw videos kept %g days\n",
		a.SpeechStrategy, a.LessonMinutes, 100*a.ChangedShare, 30*24*60/a.DetectionsPerMonth, 30*24*60/a.SweepsPerMonth, a.RawRetentionDays)
	fmt.Fprintf(w, "Per video hour: %s.\n\n", r.Fit)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "per video hour\tusage\tunit\tunit price\tcost\t")
	for _, l := range r.PerHour {
		fmt.Fprintf(tw, "%s\t%s\t%s\t$%s\t$%.4f\t\n", l.Item, num(l.Usage), l.Unit, num(l.UnitPrice), l.Cost)
	}
	fmt.Fprintf(tw, "TOTAL per video hour\t\t\t\t$%.4f\t\n", r.PerHourTotal)
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "course\tlessons\tvideo\tcost\tper video hour (as measured)\t")
	for _, c := range r.Courses {
		fmt.Fprintf(tw, "%s\t%d\t%s\t$%.4f\t$%.4f\t\n", c.Course, c.Lessons, hms(c.VideoSeconds), c.Total, c.PerHour)
	}
	fmt.Fprintf(tw, "all\t%d\t%s\t$%.4f\t\t\n", len(r.Lessons), hms(r.VideoSeconds), r.Total)
	tw.Flush()

	if maxLessons > 0 && len(r.Lessons) > 0 {
		ls := append([]LessonCost(nil), r.Lessons...)
		sort.Slice(ls, func(i, j int) bool { return ls[i].Total > ls[j].Total })
		var sum float64
		for _, l := range ls {
			sum += l.Total
		}
		fmt.Fprintf(w, "\nper lesson: mean $%.5f, dearest $%.5f (%s)\n", sum/float64(len(ls)), ls[0].Total, ls[0].ID)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "lesson\tcourse\tvideo\tpaid APIs\tplatform\ttotal\t")
		for _, l := range ls[:min(maxLessons, len(ls))] {
			fmt.Fprintf(tw, "%s\t%s\t%s\t$%.5f\t$%.5f\t$%.5f\t\n", l.ID, l.Course, hms(l.VideoSeconds), l.API, l.Platform, l.Total)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "per month (this catalog)\tusage\tunit\tunit price\tcost\t")
	for _, l := range r.Month.Lines {
		fmt.Fprintf(tw, "%s\t%s\t%s\t$%s\t$%.4f\t\n", l.Item, num(l.Usage), l.Unit, num(l.UnitPrice), l.Cost)
	}
	fmt.Fprintf(tw, "TOTAL per month\t\t\t\t$%.4f\t\n", r.Month.Total)
	tw.Flush()
	if len(r.Unpriced) > 0 {
		fmt.Fprintf(w, "\nleft out, no price in the table: %s\n", strings.Join(r.Unpriced, ", "))
	}
}

// num prints a quantity with the digits that matter.
func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func hms(sec float64) string {
	s := int(sec + 0.5)
	return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
}
