//! PyO3 bindings (thin): the `crossrank._crossrank` extension module behind
//! the Python package in `python/crossrank`. Loading, device choice, option
//! parsing (the core's `ScoreOptions`, read from JSON as every front end
//! reads it), scoring and ranking are the core's; this file moves values
//! across, releases the GIL while the core works, turns Ctrl-C into
//! `KeyboardInterrupt` between forward passes, and core errors into the
//! package's exception classes (`crossrank._errors`).

use std::sync::Mutex;

use crossrank::device::{self, DeviceChoice};
use crossrank::quantize::quantize_checkpoint;
use crossrank::{Checkpoint, EmbedOptions, Embedder, Error, Reranker, ScoreOptions, WeightDtype};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// See Cargo.toml: mimalloc keeps freed activation buffers (glibc's malloc
/// returns them to the kernel and page-faults them in again on every op).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (as in the CLI's main.rs).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// A core error as the package's exception: `ModelNotFoundError`
/// (FileNotFoundError), `ModelIOError` (OSError), `DeviceError`
/// (RuntimeError), `InvalidInputError` (ValueError) — all `crossrank.Error`
/// — or `KeyboardInterrupt`.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let class = match &e {
        Error::Interrupted => return PyKeyboardInterrupt::new_err(()),
        Error::MissingFile { .. } => "ModelNotFoundError",
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => "ModelNotFoundError",
        Error::Io { .. } | Error::Write { .. } | Error::Hub(_) => "ModelIOError",
        Error::Device(_) => "DeviceError",
        _ => "InvalidInputError",
    };
    let class = py.import("crossrank._errors").and_then(|m| m.getattr(class)).and_then(|c| Ok(c.cast_into::<PyType>()?));
    match class {
        Ok(class) => PyErr::from_type(class, e.to_string()),
        Err(import) => import,
    }
}

/// Run `f` without the GIL (other Python threads keep running); its error
/// becomes the package's exception.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> crossrank::Result<T> + Send) -> PyResult<T> {
    py.detach(f).map_err(|e| to_py(py, e))
}

fn parse<T: std::str::FromStr<Err = Error>>(py: Python<'_>, s: &str) -> PyResult<T> {
    s.parse().map_err(|e| to_py(py, e))
}

/// `ScoreOptions` from the JSON the Python layer builds: the core's names,
/// defaults and checks (an unknown name is an error).
fn score_options(py: Python<'_>, json: &str) -> PyResult<ScoreOptions> {
    serde_json::from_str(json).map_err(|e| to_py(py, Error::InvalidInput(format!("invalid options: {e}"))))
}

/// Score with the GIL released, checking for Ctrl-C after every forward
/// pass: a pending signal stops scoring and its exception (normally
/// `KeyboardInterrupt`) is raised.
fn scores(py: Python<'_>, r: &Mutex<Box<Reranker>>, pairs: &[(String, String)], opts: &ScoreOptions) -> PyResult<Vec<Vec<f32>>> {
    let mut signal: Option<PyErr> = None;
    let result = py.detach(|| {
        let r = r.lock().unwrap_or_else(|p| p.into_inner());
        r.compute_passage_scores_between(pairs, opts, &mut |_, _| {
            Python::attach(|py| py.check_signals()).map_err(|e| {
                signal = Some(e);
                Error::Interrupted
            })
        })
    });
    match (result, signal) {
        (_, Some(e)) => Err(e),
        (Ok(layers), None) => Ok(layers.into_iter().map(|l| l.into_iter().map(|p| p.score).collect()).collect()),
        (Err(e), None) => Err(to_py(py, e)),
    }
}

/// A loaded reranker (the Python classes wrap it).
#[pyclass(frozen, module = "crossrank._crossrank")]
struct RerankerModel {
    // Boxed: the model is 64-byte aligned, a Python object only 16.
    inner: Mutex<Box<Reranker>>,
    #[pyo3(get)]
    device: String,
    #[pyo3(get)]
    device_reason: String,
    #[pyo3(get)]
    dtype: String,
    #[pyo3(get)]
    architecture: String,
    #[pyo3(get)]
    is_llm: bool,
}

#[pymethods]
impl RerankerModel {
    /// Load `spec` (a directory, or a Hub repo id `owner/name[@revision]`
    /// into the Hugging Face cache) on `device` ("auto", "cpu", "wgpu") with
    /// weights stored as `dtype`. `fp16_unless_cpu`: FlagEmbedding's
    /// `use_fp16`, which it ignores on the CPU — f16 on a GPU, f32 on the CPU.
    #[new]
    #[pyo3(signature = (spec, device = "auto", dtype = "f32", fp16_unless_cpu = false))]
    fn new(py: Python<'_>, spec: &str, device: &str, dtype: &str, fp16_unless_cpu: bool) -> PyResult<Self> {
        let choice: DeviceChoice = parse(py, device)?;
        let dtype: WeightDtype = parse(py, dtype)?;
        detached(py, || {
            let selected = device::select(choice)?;
            let dtype = match (fp16_unless_cpu, selected.kind) {
                (true, "cpu") => WeightDtype::F32,
                (true, _) => WeightDtype::F16,
                (false, _) => dtype,
            };
            let r = Reranker::from_pretrained(spec).device(&selected.device).dtype(dtype).load()?;
            Ok(RerankerModel {
                device: selected.kind.to_string(),
                device_reason: selected.reason,
                dtype: dtype.as_str().to_string(),
                architecture: format!("{:?}", r.architecture()),
                is_llm: r.architecture().is_llm(),
                inner: Mutex::new(Box::new(r)),
            })
        })
    }

    /// Scores per scoring layer (one list but for a layer-wise model asked
    /// for several layers), in input order. `options`: `ScoreOptions` as JSON.
    fn compute_score(&self, py: Python<'_>, pairs: Vec<(String, String)>, options: &str) -> PyResult<Vec<Vec<f32>>> {
        let opts = score_options(py, options)?;
        scores(py, &self.inner, &pairs, &opts)
    }

    /// `docs` ranked for `query` by the core's ranking (best first, ties in
    /// input order, NaN last): `[(index, score)]`, at most `top_k`.
    #[pyo3(signature = (query, docs, top_k, options))]
    fn rerank(&self, py: Python<'_>, query: String, docs: Vec<String>, top_k: Option<usize>, options: &str) -> PyResult<Vec<(usize, f32)>> {
        let opts = score_options(py, options)?;
        let pairs: Vec<(String, String)> = docs.into_iter().map(|d| (query.clone(), d)).collect();
        let mut layers = scores(py, &self.inner, &pairs, &opts)?;
        if layers.len() != 1 {
            return Err(to_py(py, Error::InvalidInput(format!("{} cutoff layers give {} score lists; rerank needs one", layers.len(), layers.len()))));
        }
        Ok(crossrank::rank(&layers.remove(0), top_k).into_iter().map(|r| (r.index, r.score)).collect())
    }

    /// The longest input the model takes, in tokens.
    #[getter]
    fn max_input_tokens(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).max_input_tokens()
    }
}

/// A loaded sentence embedder.
#[pyclass(frozen, module = "crossrank._crossrank")]
struct EmbedderModel {
    inner: Mutex<Box<Embedder>>,
    #[pyo3(get)]
    device: String,
    #[pyo3(get)]
    dtype: String,
}

#[pymethods]
impl EmbedderModel {
    #[new]
    #[pyo3(signature = (spec, device = "auto", dtype = "f32"))]
    fn new(py: Python<'_>, spec: &str, device: &str, dtype: &str) -> PyResult<Self> {
        let choice: DeviceChoice = parse(py, device)?;
        let dtype: WeightDtype = parse(py, dtype)?;
        detached(py, || {
            let selected = device::select(choice)?;
            let e = Embedder::from_pretrained(spec).device(&selected.device).dtype(dtype).load()?;
            Ok(EmbedderModel { inner: Mutex::new(Box::new(e)), device: selected.kind.to_string(), dtype: dtype.as_str().to_string() })
        })
    }

    /// One vector per text. `None` options follow the checkpoint's
    /// sentence-transformers files.
    #[pyo3(signature = (texts, max_length = None, pooling = None, normalize = None, batch_size = None, prompt = None, prompt_name = None))]
    #[allow(clippy::too_many_arguments)]
    fn embed(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        max_length: Option<usize>,
        pooling: Option<&str>,
        normalize: Option<bool>,
        batch_size: Option<usize>,
        prompt: Option<String>,
        prompt_name: Option<String>,
    ) -> PyResult<Vec<Vec<f32>>> {
        let pooling = pooling.map(|p| parse(py, p)).transpose()?;
        let opts = EmbedOptions { max_length, pooling, normalize, batch_size, prompt, prompt_name };
        detached(py, || self.inner.lock().unwrap_or_else(|p| p.into_inner()).embed(&texts, &opts))
    }
}

/// `crossrank quantize`: write `src` (a directory or Hub repo id) with its
/// weights stored as `dtype` into the directory `dst`; returns the report
/// as JSON.
#[pyfunction]
fn quantize(py: Python<'_>, src: &str, dst: std::path::PathBuf, dtype: &str) -> PyResult<String> {
    let dtype: WeightDtype = parse(py, dtype)?;
    detached(py, || {
        let report = quantize_checkpoint(&Checkpoint::resolve(src, false)?, dtype, &dst)?;
        serde_json::to_string(&report).map_err(|e| Error::InvalidInput(e.to_string()))
    })
}

/// The CPU's integer kernels and the GPU adapters this build can use.
#[pyfunction]
fn cpu_int8_kernels() -> String {
    device::cpu_int8_kernels().to_string()
}

#[pymodule]
fn _crossrank(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: sets a process-wide mimalloc option; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    m.add_class::<RerankerModel>()?;
    m.add_class::<EmbedderModel>()?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(cpu_int8_kernels, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
