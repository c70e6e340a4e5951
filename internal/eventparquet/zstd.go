package eventparquet

import (
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// pageZstd compresses Parquet pages with a window as large as a page. Arrow's
// own codec takes its encoders from a pool that the garbage collector
// empties, each with an 8 MB window and 16 MB of history: on the benchmark
// corpus they were 64-96 MB of a build's heap. Decoding is arrow's.
type pageZstd struct {
	compress.Codec
	enc *zstd.Encoder
}

func (z pageZstd) Encode(dst, src []byte) []byte { return z.enc.EncodeAll(src, dst[:0]) }

func (z pageZstd) EncodeLevel(dst, src []byte, _ int) []byte { return z.Encode(dst, src) }

var useSmallWindow = sync.OnceValue(func() error {
	arrows, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		return err
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(pageSize),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return err
	}
	compress.RegisterCodec(compress.Codecs.Zstd, pageZstd{Codec: arrows, enc: enc})
	return nil
})
