package sample

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sync/errgroup"
)

// The load course (issue 9): a synthetic course of any number of lessons,
// made from a seed, for the load and fault runs. Its pages read like the
// sample's (Spanish narration on a school's topics, slides with titles and
// code) so the local engines answer for them as for the sample, and its
// videos are short and cheap to make: a coloured frame with the slide titles
// drawn on it over a tone (the local Speech-to-Text answers from the
// narration, not the sound). They are cached like the sample videos.

// LoadGeneratorVersion is part of every load video's input hash.
const LoadGeneratorVersion = "load-video/1"

// Load video geometry: smaller than the sample's, still a real H.264 + AAC MP4.
const (
	loadWidth  = 320
	loadHeight = 180
	loadFPS    = 6
)

// LoadOptions shape a load course.
type LoadOptions struct {
	// Lessons is how many lessons with video the course has (default 100).
	Lessons int
	// Seed makes the course: the same seed, the same course.
	Seed int64
	// MinSeconds and MaxSeconds bound each video's length (defaults 4 and
	// 10): varied, so that a cost report can tell what grows with the
	// video's length from what each lesson costs whatever its length.
	MinSeconds, MaxSeconds float64
	// PerProduct is the lessons of one product (course), spread over
	// modules of five pages (default 25).
	PerProduct int
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.Lessons <= 0 {
		o.Lessons = 100
	}
	if o.MinSeconds <= 0 {
		o.MinSeconds = 4
	}
	if o.MaxSeconds < o.MinSeconds {
		o.MaxSeconds = max(o.MinSeconds, 10)
	}
	if o.PerProduct <= 0 {
		o.PerProduct = 25
	}
	return o
}

// LoadVideo says how to make one load lesson's video.
type LoadVideo struct {
	Page     Page
	Seconds  float64
	NoAudio  bool // a video without an audio track (a poison input)
	ToneHz   int
	Colour   string
	FileName string // <pageId>.mp4
}

// loadSchool is what a school's lessons talk about.
type loadSchool struct {
	slug, subdomain, course string
	topics                  []string
	words                   []string
	code                    []string
}

var loadSchools = []loadSchool{
	{
		slug: "programacion", subdomain: "carga-programacion", course: "Programación a escala",
		topics: []string{"Variables", "Condicionales", "Bucles", "Funciones", "Listas", "Diccionarios", "Clases y objetos",
			"Errores y excepciones", "Pruebas unitarias", "Archivos", "APIs web", "Algoritmos de búsqueda", "Recursión", "Módulos"},
		words: []string{"variable", "valor", "función", "parámetro", "bucle", "lista", "índice", "diccionario", "clave", "objeto",
			"clase", "método", "excepción", "prueba", "archivo", "módulo", "algoritmo", "programa", "dato", "resultado", "condición",
			"iteración", "cadena", "número", "memoria", "intérprete", "biblioteca", "petición", "respuesta", "código"},
		code: []string{"total = 0\nfor n in numeros:\n    total += n", "def doble(x):\n    return x * 2", "if edad >= 18:\n    print(\"adulto\")",
			"datos = {\"clave\": 1}\nprint(datos[\"clave\"])", "try:\n    abrir()\nexcept OSError:\n    avisar()"},
	},
	{
		slug: "marketing", subdomain: "carga-marketing", course: "Marketing a escala",
		topics: []string{"Buyer persona", "Calendario editorial", "Redes sociales", "Email marketing", "SEO", "Publicidad de pago",
			"Métricas", "Embudo de ventas", "Lanzamientos", "Marca personal", "Comunidad", "Copywriting", "Landing pages", "Retención"},
		words: []string{"audiencia", "cliente", "contenido", "publicación", "campaña", "anuncio", "presupuesto", "métrica",
			"conversión", "embudo", "correo", "suscriptor", "marca", "mensaje", "oferta", "venta", "lanzamiento", "red", "alcance",
			"clic", "página", "palabra", "búsqueda", "comunidad", "valor", "problema", "solución", "estrategia", "objetivo", "resultado"},
	},
}

var (
	loadVerbs  = []string{"vemos", "explicamos", "practicamos", "repasamos", "medimos", "construimos", "comparamos", "analizamos"}
	loadJoins  = []string{"y después", "para entender", "con un ejemplo de", "sin olvidar", "antes de pasar a", "junto con"}
	loadAdjs   = []string{"principal", "sencillo", "útil", "claro", "completo", "práctico", "nuevo", "habitual"}
	loadColour = []string{"0x1e293b", "0x0f3b2e", "0x3b1e2e", "0x2e2a10", "0x10263b"}
)

// LoadCourse makes the load course: the catalog the local Hotmart serves
// (products alternating between the schools, modules of five pages) and how
// to make each lesson's video.
func LoadCourse(o LoadOptions) (Catalog, []LoadVideo) {
	o = o.withDefaults()
	rnd := rand.New(rand.NewPCG(uint64(o.Seed), 0x10ad))
	cat := Catalog{Producer: "Academia de carga"}
	var videos []LoadVideo
	for i := 0; i < o.Lessons; i++ {
		p := i / o.PerProduct
		if i%o.PerProduct == 0 {
			sc := loadSchools[p%len(loadSchools)]
			cat.Products = append(cat.Products, Product{
				ID: 4200001 + int64(p), Name: fmt.Sprintf("%s %d", sc.course, p+1), Ucode: fmt.Sprintf("load-%d-%d", o.Seed, p),
				Status: "ACTIVE", Format: "ONLINE_COURSE", ClubSubdomain: fmt.Sprintf("%s-%d", sc.subdomain, p+1),
				School: sc.slug, Language: "es-ES",
			})
		}
		prod := &cat.Products[len(cat.Products)-1]
		j := i % o.PerProduct
		if j%5 == 0 {
			prod.Modules = append(prod.Modules, Module{
				ModuleID: fmt.Sprintf("ldM%02d%02d", p, j/5), Name: fmt.Sprintf("Módulo %d", j/5+1), Sequence: j/5 + 1,
			})
		}
		mod := &prod.Modules[len(prod.Modules)-1]
		sc := loadSchools[p%len(loadSchools)]
		secs := o.MinSeconds + rnd.Float64()*(o.MaxSeconds-o.MinSeconds)
		secs = float64(int(secs*10)) / 10
		page := loadPage(rnd, sc, fmt.Sprintf("ld%04dp%05d", i+1, o.Seed%100000), len(mod.Pages)+1, secs)
		mod.Pages = append(mod.Pages, page)
		videos = append(videos, LoadVideo{Page: page, Seconds: secs, ToneHz: 220 + 20*rnd.IntN(20),
			Colour: loadColour[rnd.IntN(len(loadColour))], FileName: page.PageID + ".mp4"})
	}
	return cat, videos
}

// loadPage writes a lesson: a title on one of the school's topics, a
// narration of about 2.5 words a second of video (how fast a teacher
// speaks), and two slides.
func loadPage(rnd *rand.Rand, sc loadSchool, id string, order int, secs float64) Page {
	pick := func(xs []string) string { return xs[rnd.IntN(len(xs))] }
	topic := pick(sc.topics)
	title := fmt.Sprintf("%s: %s %s", topic, pick(sc.words), pick(loadAdjs))
	want := int(secs * 2.5)
	var words []string
	for len(words) < want {
		s := fmt.Sprintf("En esta parte %s el %s %s %s la %s", pick(loadVerbs), pick(sc.words), pick(loadAdjs), pick(loadJoins), pick(sc.words))
		words = append(words, strings.Fields(s)...)
		words[len(words)-1] += "."
	}
	words = words[:want]
	words[0] = strings.ToUpper(words[0][:1]) + words[0][1:]
	narration := strings.TrimSuffix(strings.Join(words, " "), ".") + "."
	slides := []Slide{
		{At: 0, Title: title, Text: fmt.Sprintf("Qué es %s y para qué sirve", strings.ToLower(topic))},
		{At: float64(int(secs / 2)), Title: "Ejemplo de " + strings.ToLower(topic), Text: pick(sc.words) + ", " + pick(sc.words) + ", " + pick(sc.words)},
	}
	if len(sc.code) > 0 {
		slides[1].Code = pick(sc.code)
	}
	return Page{PageID: id, Name: title, Type: "CONTENT", PageOrder: order, Published: true, HasMedia: true,
		Narration: narration, Slides: slides}
}

// loadInputHash covers everything that decides a load video's content.
func loadInputHash(v LoadVideo) string {
	b, _ := json.Marshal(struct {
		Version   string
		W, H, FPS int
		Seconds   float64
		NoAudio   bool
		Tone      int
		Colour    string
		Titles    []string
		ID        string
	}{LoadGeneratorVersion, loadWidth, loadHeight, loadFPS, v.Seconds, v.NoAudio, v.ToneHz, v.Colour, slideTitles(v.Page), v.Page.PageID})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func slideTitles(p Page) []string {
	var ts []string
	for _, s := range p.Slides {
		ts = append(ts, s.Title)
	}
	return ts
}

// GenerateLoad makes <dir>/<FileName> for every load video, reusing those
// whose sidecar records the same inputs. Videos come back in the order
// given.
func GenerateLoad(ctx context.Context, videos []LoadVideo, dir string, opts GenerateOptions) ([]Video, error) {
	if opts.FontDir == "" {
		opts.FontDir = DefaultFontDir
	}
	if opts.Parallelism <= 0 {
		opts.Parallelism = 2
	}
	if err := CheckTools(ctx, opts.FontDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("load videos: %w", err)
	}
	out := make([]Video, len(videos))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallelism)
	for i, v := range videos {
		g.Go(func() (err error) {
			if out[i], err = generateLoadOne(gctx, v, dir, opts); err != nil {
				return fmt.Errorf("page %s: %w", v.Page.PageID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("load videos: %w", err)
	}
	return out, nil
}

func generateLoadOne(ctx context.Context, v LoadVideo, dir string, opts GenerateOptions) (Video, error) {
	out := filepath.Join(dir, v.FileName)
	side := filepath.Join(dir, strings.TrimSuffix(v.FileName, filepath.Ext(v.FileName))+".gen.json")
	hash := loadInputHash(v)
	res := Video{PageID: v.Page.PageID, Path: out, Duration: v.Seconds}
	if !opts.Force {
		if b, err := os.ReadFile(side); err == nil {
			var sc sidecar
			if json.Unmarshal(b, &sc) == nil && sc.Inputs == hash {
				if size, sum, err := fileMD5(out); err == nil && size == sc.Size && sum == sc.MD5 {
					res.Size, res.MD5 = size, sum
					logf(opts, "load video %s: cached", v.Page.PageID)
					return res, nil
				}
			}
		}
	}
	work, err := os.MkdirTemp("", "load-video-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	var chain []string
	for i, s := range v.Page.Slides {
		enable := fmt.Sprintf("gte(t,%g)", s.At)
		if i+1 < len(v.Page.Slides) {
			enable = fmt.Sprintf("gte(t,%g)*lt(t,%g)", s.At, v.Page.Slides[i+1].At)
		}
		file := filepath.Join(work, fmt.Sprintf("title%d.txt", i))
		if err := os.WriteFile(file, []byte(wrap(s.Title, 24)), 0o644); err != nil {
			return res, err
		}
		kv := []string{
			"fontfile=" + escapeFilter(escapeOption(filepath.Join(opts.FontDir, fontBold))),
			"textfile=" + escapeFilter(escapeOption(file)),
			"expansion=none", "fontsize=16", "fontcolor=white", "x=12", "y=12", "line_spacing=4",
			"enable=" + escapeFilter(escapeOption(enable)),
		}
		chain = append(chain, "drawtext="+strings.Join(kv, ":"))
	}
	graph := "[0:v]null[v]"
	if len(chain) > 0 {
		graph = "[0:v]" + strings.Join(chain, ",") + "[v]"
	}
	script := filepath.Join(work, "filter.txt")
	if err := os.WriteFile(script, []byte(graph), 0o644); err != nil {
		return res, err
	}
	tmp := filepath.Join(dir, "."+v.FileName+".tmp.mp4")
	defer os.Remove(tmp)
	args := []string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("color=c=%s:s=%dx%d:r=%d:d=%.3f", v.Colour, loadWidth, loadHeight, loadFPS, v.Seconds)}
	if !v.NoAudio {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=16000:duration=%.3f", v.ToneHz, v.Seconds))
	}
	args = append(args, "-filter_complex_script", script, "-map", "[v]")
	if !v.NoAudio {
		args = append(args, "-map", "1:a", "-c:a", "aac", "-b:a", "24k", "-ac", "1")
	}
	args = append(args,
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "stillimage", "-crf", "30", "-pix_fmt", "yuv420p",
		"-g", fmt.Sprint(loadFPS*10), "-threads", "1",
		"-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
		"-movflags", "+faststart", "-shortest", "-f", "mp4", tmp)
	if err := run(ctx, "ffmpeg", args...); err != nil {
		return res, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return res, err
	}
	size, sum, err := fileMD5(out)
	if err != nil {
		return res, err
	}
	res.Size, res.MD5 = size, sum
	b, _ := json.MarshalIndent(sidecar{Inputs: hash, MD5: sum, Size: size, Duration: v.Seconds}, "", "  ")
	if err := os.WriteFile(side, append(b, '\n'), 0o644); err != nil {
		return res, err
	}
	logf(opts, "load video %s: generated (%.1fs, %d bytes)", v.Page.PageID, v.Seconds, size)
	return res, nil
}
