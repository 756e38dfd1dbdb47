package main

import (
	"fmt"
	"math"
	"strings"
)

// driverColors gives every driver one colour in both panels.
var driverColors = map[string]string{
	"pgpurepy-default":   "#1f5fa8",
	"pgpurepy-opendb":    "#4f94d4",
	"pgpurepy-tuned":     "#0b3d75",
	"pgpurepy-ext":       "#8cc4f0",
	"pgpurepy-ext-tuned": "#2bb3c0",
	"pgx-stdlib-default": "#d9822b",
	"pgx-stdlib-tuned":   "#f2b36b",
	"pq-default":         "#7b4fa0",
	"pq-tuned":           "#b493d1",
	"pgxpool":            "#5e8c3a",
	"pgbench":            "#333333",
}

// svgChart draws two panels: grouped bars of median ops/s per driver for
// each workload at the chart concurrencies (8 and 64 when measured), and
// new server connections per driver at the highest concurrency, on a log
// scale because they span zero to thousands.
func (r *results) svgChart() string {
	concs := r.concsAtLeast(8)
	if len(concs) == 0 {
		concs = r.Plan.Conc
	}
	if len(concs) > 2 {
		concs = concs[len(concs)-2:]
	}
	cmax := r.maxConc()
	drivers := r.Plan.Drivers
	works := r.Plan.Workloads

	const (
		margin  = 20
		subW    = 270
		subH    = 230
		axisW   = 52
		legendH = 50
		titleH  = 30
	)
	width := margin*2 + len(works)*subW
	panel2Top := margin + titleH + legendH + subH + 70
	panel2H := 260
	height := panel2Top + titleH + panel2H + 60

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="16" font-weight="bold">Median ops/s per driver (higher is better), c = %s — %s, %s</text>`+"\n",
		margin, margin+16, joinInts(concs, " and "), r.Machine.CPU, fmt.Sprintf("%d CPUs", r.Machine.NumCPU))

	// Legend.
	lx, ly := margin, margin+titleH+6
	for _, d := range drivers {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
			lx, ly, driverColors[d], lx+16, ly+10, d)
		lx += 24 + 7*len(d)
		if lx > width-160 {
			lx, ly = margin, ly+18
		}
	}

	// Panel 1: one subplot per workload.
	top := margin + titleH + legendH
	for i, w := range works {
		x0 := margin + i*subW
		var series [][]float64
		maxV := 0.0
		for _, c := range concs {
			var row []float64
			for _, d := range drivers {
				v := 0.0
				if a := r.get(w, c, d); a != nil {
					v = a.Median
				}
				row = append(row, v)
				maxV = math.Max(maxV, v)
			}
			series = append(series, row)
		}
		yMax := niceCeil(maxV)
		plotX, plotW := x0+axisW, subW-axisW-14
		plotY, plotH := top+20, subH-40
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" font-weight="bold" text-anchor="middle">%s</text>`+"\n", plotX+plotW/2, top+10, w)
		for t := 0; t <= 4; t++ {
			v := yMax * float64(t) / 4
			y := float64(plotY+plotH) - float64(plotH)*float64(t)/4
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n",
				plotX, y, plotX+plotW, y, plotX-4, y+4, shortNum(v))
		}
		groupW := float64(plotW) / float64(len(concs))
		barW := (groupW - 12) / float64(len(drivers))
		for gi, c := range concs {
			gx := float64(plotX) + groupW*float64(gi) + 6
			for di, d := range drivers {
				v := series[gi][di]
				if v <= 0 || yMax <= 0 {
					continue
				}
				h := float64(plotH) * v / yMax
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s c=%d %s: %s ops/s</title></rect>`+"\n",
					gx+barW*float64(di), float64(plotY+plotH)-h, math.Max(barW-1, 1), h, driverColors[d], w, c, d, fmtOps(v))
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">c=%d</text>`+"\n", gx+(groupW-12)/2, plotY+plotH+15, c)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", plotX, plotY+plotH, plotX+plotW, plotY+plotH)
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", plotX, plotY, plotX, plotY+plotH)
	}

	// Panel 2: new connections during the timed part at the highest
	// concurrency, summed over rounds, log scale.
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="16" font-weight="bold">New server connections during the timed cells at c=%d, all rounds (lower is better; log scale)</text>`+"\n",
		margin, panel2Top+16, cmax)
	var p2drivers []string
	for _, d := range drivers {
		if d != pgbenchName {
			p2drivers = append(p2drivers, d)
		}
	}
	plotX, plotW := margin+axisW, width-2*margin-axisW
	plotY, plotH := panel2Top+titleH+10, panel2H-40
	maxV := 1.0
	for _, w := range works {
		for _, d := range p2drivers {
			if a := r.get(w, cmax, d); a != nil {
				maxV = math.Max(maxV, float64(a.NewConnsSum))
			}
		}
	}
	decades := math.Ceil(math.Log10(maxV + 1))
	if decades < 1 {
		decades = 1
	}
	scale := func(v float64) float64 { return float64(plotH) * math.Log10(v+1) / decades }
	for t := 0; t <= int(decades); t++ {
		v := math.Pow(10, float64(t))
		label := shortNum(v)
		if t == 0 {
			v, label = 0, "0"
		}
		y := float64(plotY+plotH) - scale(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n",
			plotX, y, plotX+plotW, y, plotX-4, y+4, label)
	}
	groupW := float64(plotW) / float64(max(len(works), 1))
	barW := (groupW - 20) / float64(max(len(p2drivers), 1))
	for gi, w := range works {
		gx := float64(plotX) + groupW*float64(gi) + 10
		for di, d := range p2drivers {
			a := r.get(w, cmax, d)
			if a == nil {
				continue
			}
			v := float64(a.NewConnsSum)
			h := scale(v)
			x := gx + barW*float64(di)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s c=%d %s: %d new connections</title></rect>`+"\n",
				x, float64(plotY+plotH)-h, math.Max(barW-2, 1), math.Max(h, 0), driverColors[d], w, cmax, d, a.NewConnsSum)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9">%s</text>`+"\n",
				x+barW/2-1, float64(plotY+plotH)-h-3, shortNum(v))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="12">%s</text>`+"\n", gx+(groupW-20)/2, plotY+plotH+16, w)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", plotX, plotY+plotH, plotX+plotW, plotY+plotH)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`+"\n", plotX, plotY, plotX, plotY+plotH)
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">Generated by bench/ (make bench) on %s; PostgreSQL %s; %s cells × %d round(s).</text>`+"\n",
		margin, height-14, r.Machine.Date.Format("2006-01-02"), r.Machine.ServerVersion, r.Plan.Duration, r.Plan.Rounds)
	b.WriteString("</svg>\n")
	return b.String()
}

// niceCeil rounds x up to 1, 2 or 5 times a power of ten.
func niceCeil(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if x <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func shortNum(v float64) string {
	switch {
	case v >= 1e6:
		return trimZero(fmt.Sprintf("%.1f", v/1e6)) + "M"
	case v >= 1e3:
		return trimZero(fmt.Sprintf("%.1f", v/1e3)) + "k"
	case v >= 10 || v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }

func joinInts(xs []int, sep string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, sep)
}
