package llm

import (
	"encoding/base64"
	"image"
	_ "image/gif" // image.DecodeConfig of inline GIF images
	_ "image/jpeg"
	_ "image/png"
	"strings"
)

// Images are priced with GPT-4o's documented rule (OpenAI's vision guide):
// detail "low" costs 85 tokens; otherwise the image is scaled to fit in
// 2048×2048, then down so that its shorter side is at most 768, and costs 85
// plus 170 per 512-pixel tile. The size is read from an inline image (a
// data: URL of a PNG, JPEG or GIF); an image behind a URL is never fetched
// and is priced at the rule's maximum (a 768×2048 image, 8 tiles: 1445), so
// that the reservation does not fall short. Other models price images
// differently (gpt-4o-mini, gpt-4.1-mini and gpt-5-mini by 32-pixel patches
// with their own multipliers); the backend's report corrects the estimate.
const (
	imageBase     = 85
	imagePerTile  = 170
	imageTile     = 512
	imageMaxSide  = 2048
	imageMinSide  = 768
	imageMaxTiles = 8
)

// imageTokens prices one image part.
func imageTokens(url, detail string) uint64 {
	if detail == "low" {
		return imageBase
	}
	w, h, ok := inlineImageSize(url)
	if !ok {
		return imageBase + imagePerTile*imageMaxTiles
	}
	return imageBase + imagePerTile*imageTiles(w, h)
}

// imageTiles is the number of 512-pixel tiles of a w×h image in high detail.
func imageTiles(w, h int) uint64 {
	if w <= 0 || h <= 0 {
		return imageMaxTiles
	}
	fw, fh := float64(w), float64(h)
	if s := imageMaxSide / max(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	if s := imageMinSide / min(fw, fh); s < 1 {
		fw, fh = fw*s, fh*s
	}
	tiles := func(x float64) uint64 { return uint64((int(x) + imageTile - 1) / imageTile) }
	return max(tiles(fw), 1) * max(tiles(fh), 1)
}

// inlineImageSize reads the size of a base64 data: URL image without
// decoding its pixels.
func inlineImageSize(url string) (w, h int, ok bool) {
	rest, found := strings.CutPrefix(url, "data:")
	if !found {
		return 0, 0, false
	}
	meta, data, found := strings.Cut(rest, ",")
	if !found || !strings.HasSuffix(meta, ";base64") {
		return 0, 0, false
	}
	cfg, _, err := image.DecodeConfig(base64.NewDecoder(base64.StdEncoding, strings.NewReader(data)))
	if err != nil {
		return 0, 0, false
	}
	return cfg.Width, cfg.Height, true
}
