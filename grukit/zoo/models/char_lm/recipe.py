"""The ``char-lm`` recipe: data, hyperparameters, search space, training hooks, serving
and the command line, over the model of :mod:`.model` (generation: :mod:`.generation`).

Training: random windows of ``seq_len`` characters of the first 90% of the text
(``grukit.datasets.load_tiny_shakespeare("train")``, 1,003,854 characters),
targets shifted by one, sparse categorical cross-entropy from logits, Adam with
a cosine decay of the learning rate over all steps, gradient clipping. An
"epoch" is ``steps_per_epoch`` batches (the checkpoint/early-stopping unit).
Keras's ``val_loss`` during training (the search's objective) is the mean loss
over non-overlapping ``seq_len`` windows of the validation text, each from a
zero state.

Example::

    >>> import grukit.zoo
    >>> lm = grukit.zoo.get("char-lm")
    >>> model = grukit.zoo.load("char-lm")
    >>> text = lm.predict(model, "ROMEO:", length=10, temperature=0.8, seed=1)
    >>> len(text)
    10
"""

from __future__ import annotations

import json
import logging
import math
import sys

import keras
import numpy as np

from grukit.zoo import ZooModel
from grukit.zoo.base import text_batch

from .config import CharLMConfig
from .data import CharData, random_windows, strided_windows
from .generation import MAX_LENGTH, generate
from .model import CharLM, _runner, stream_loss
from .preprocessing import START, UNKNOWN, encode
from .serving import _run_fresh, _tf_generate, _tf_step


log = logging.getLogger(__name__)
SEARCH_VARIANTS = ["gru", "mgu", "mgu2", "ligru", "mingru"]


# ==================================================================== recipe
class CharLanguageModel(ZooModel):
    """The ``char-lm`` recipe: Tiny Shakespeare character language model on grukit layers.

    Data: :func:`grukit.datasets.load_tiny_shakespeare` (``train``: first 90%,
    ``validation``: last 10%; ``test`` = validation). Hyperparameters:
    :class:`CharLMConfig`, profiles in ``grukit/zoo/models/char_lm/hparams.json``.
    ``max_train_chars`` (training windows),
    ``max_val_chars`` (Keras's ``val_loss`` during training and search) and
    ``max_eval_chars`` (the reported evaluation) cut the splits (0 = all).

    Example:
        >>> import grukit.zoo
        >>> lm = grukit.zoo.get("char-lm")
        >>> data = lm.load_data()                 # Tiny Shakespeare from $GRUKIT_DATA_DIR
        >>> len(data.vocabulary), len(data.text["train"]), len(data.text["validation"])
        (65, 1003854, 111540)
        >>> hp = lm.hparams(quick=True)           # lm.train(hp, data, out) trains on:
        >>> x, y = lm.dataset(data, hp, "train", training=True)[0]
        >>> x.shape, y.shape, bool((x[:, 1:] == y[:, :-1]).all())    # y: x shifted by one
        ((32, 64), (32, 64), True)
    """

    name = "char-lm"
    description = "Tiny Shakespeare character language model: embedding -> grukit layers -> next char"
    objective = "val_loss"
    direction = "min"
    config_class = CharLMConfig

    # ------------------------------------------------------------- data
    def load_data(self, data_dir=None, path=None, **options):
        """:class:`CharData` from ``path`` (an ``input.txt``) or ``data_dir`` /
        ``$GRUKIT_DATA_DIR`` (``tinyshakespeare/input.txt``) / tensorflow-datasets."""
        if options:
            raise TypeError(f"char-lm: unknown data options {sorted(options)}; expected path.")
        return CharData(data_dir=data_dir, path=path)

    def data_files(self, data):
        return [data.source] if data.source is not None and data.source.is_file() else []

    def preprocessing(self, data, hparams):
        return {"vocabulary": data.vocabulary, "vocabulary_asset": "vocabulary.json",
                "unknown": "prompt characters outside the vocabulary: error (default) or "
                           "skipped (unknown='skip'); the SavedModel skips them",
                "empty_prompt": "read as a single newline",
                "splits": {"train": len(data.text["train"]),
                           "validation": len(data.text["validation"])},
                "evaluation": {"streams": hparams["eval_streams"],
                               "window": hparams["eval_window"], "state": "carried"}}

    def assets(self, data, hparams):
        return {"vocabulary.json": json.dumps({"vocabulary": data.vocabulary,
                                               "ids": "id i is vocabulary[i]"}) + "\n"}

    def dataset(self, data, hparams, split, training=False, seed=0):
        L, batch = hparams["seq_len"], hparams["batch_size"]
        if split == "train":
            ids = data.ids("train", hparams["max_train_chars"])
            if training:
                return random_windows(ids, L, batch, hparams["steps_per_epoch"],
                                      seed=hparams["data_seed"] + seed)
            return strided_windows(ids, L, batch)
        return strided_windows(data.ids(split, hparams["max_val_chars"]), L,
                               max(batch, 128))

    # ------------------------------------------------------ hyperparameters
    def search_space(self, hp, hparams, quick=False):
        """Variant (gru, mgu, mgu2, ligru, mingru), width, depth, dropout, window length and
        learning rate."""
        if quick:
            return {
                "variant": hp.Choice("variant", ["gru", "mgu", "ligru", "mingru"]),
                "units": hp.Choice("units", [16, 32]),
                "depth": hp.Choice("depth", [1, 2]),
                "dropout": hp.Choice("dropout", [0.0, 0.1]),
                "seq_len": hp.Choice("seq_len", [32, 64]),
                "learning_rate": hp.Float("learning_rate", 2e-3, 1e-2, sampling="log"),
            }
        return {
            "variant": hp.Choice("variant", SEARCH_VARIANTS),
            "units": hp.Choice("units", [256, 384, 512]),
            "depth": hp.Choice("depth", [2, 3]),
            "dropout": hp.Choice("dropout", [0.0, 0.1, 0.2]),
            "seq_len": hp.Choice("seq_len", [128, 192, 256]),
            "learning_rate": hp.Float("learning_rate", 1e-3, 5e-3, sampling="log"),
        }

    # ------------------------------------------------------------ model
    def build(self, hparams, data):
        model = CharLM(data.vocabulary, embedding_dim=hparams["embedding_dim"],
                       units=hparams["units"], depth=hparams["depth"],
                       variant=hparams["variant"], dropout=hparams["dropout"], name="char_lm")
        model.build((None, hparams["seq_len"]))
        lr = hparams["learning_rate"]
        ratio = hparams["min_lr_ratio"]
        if ratio < 1:
            lr = keras.optimizers.schedules.CosineDecay(
                lr, decay_steps=hparams["epochs"] * hparams["steps_per_epoch"], alpha=ratio)
        optimizer = keras.optimizers.Adam(lr, clipnorm=hparams["clipnorm"] or None)
        model.compile(optimizer=optimizer,
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def evaluate(self, model, data, hparams, split="test"):
        """Nats and bits per character over the whole split with the state carried (see the
        module docstring); ``split="test"`` is the validation text.

        The text is read with the *model's* vocabulary (``model.vocabulary``), whatever
        text it is. Characters outside it cannot be scored and are dropped before reading;
        ``unknown_characters`` says how many were (0 on the text the model was trained on).
        """
        text = data.text["validation" if split == "test" else split]
        limit = hparams["max_eval_chars"]
        text = text[:limit] if limit else text
        ids = encode(text, model.vocabulary, "skip")
        loss, n = stream_loss(model, ids, hparams["eval_streams"], hparams["eval_window"])
        return {"loss": loss, "bpc": loss / math.log(2), "characters": n,
                "unknown_characters": len(text) - len(ids)}

    # ---------------------------------------------------------- serving
    def serving(self, model, preset):
        """The SavedModel's generation function: ``generate(prompt tf.string [], length
        int32 [], temperature float32 [], top_k int32 [], seed int64 []) -> tf.string []``
        (the new text). See :meth:`export` for the ``step`` signature."""
        import tensorflow as tf

        return _tf_generate(model), [
            tf.TensorSpec([], tf.string, name="prompt"),
            tf.TensorSpec([], tf.int32, name="length"),
            tf.TensorSpec([], tf.float32, name="temperature"),
            tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.int64, name="seed")]

    def serving_sample(self, preset):
        """Generation requests ``(prompt, length, temperature, top_k, seed)`` the export is
        verified on, against :meth:`predict`."""
        return [("ROMEO:", 120, 0.8, 0, 1), ("ROMEO:", 60, 0.0, 0, 0),
                ("", 40, 1.0, 5, 7), ("Zebra \u00e9t\u00e9 ~ caf\u00e9", 40, 0.5, 0, 3)]

    def predict(self, model, inputs, preset=None, length=500, temperature=1.0, top_k=0, seed=0,
                unknown="error"):
        """Generate text after a prompt (or after each of several prompts).

        Args:
            model: a loaded preset (``grukit.zoo.load("char-lm")``) or a :class:`CharLM`.
            inputs: a prompt ``str`` (UTF-8 ``bytes`` accepted), or a list of them.
            preset: unused (the vocabulary is part of the model).
            length, temperature, top_k, seed, unknown: see :func:`generate`.

        Returns:
            The generated text (without the prompt); a list of them for a list of prompts.

        Raises:
            ValueError: see :func:`generate`.

        Example:
            >>> import grukit.zoo
            >>> lm = grukit.zoo.get("char-lm")
            >>> model = grukit.zoo.load("char-lm")
            >>> texts = lm.predict(model, ["ROMEO:", "JULIET:"], length=10, temperature=0)
            >>> [len(text) for text in texts]
            [10, 10]
            >>> lm.predict(model, "ROMEO: 42", length=10)       # '4' and '2' are not in it
            Traceback (most recent call last):
            ValueError: char-lm: the prompt holds 2 character(s) outside the model's
            65-character vocabulary: '24' (first at position 7). ...
        """
        single, prompts = text_batch(inputs, "char-lm", "prompt")
        texts = [generate(model, p, length, temperature, top_k, seed, unknown) for p in prompts]
        return texts[0] if single else texts

    # ----------------------------------------------------------- export
    def export_endpoints(self, model, preset):
        """Two signatures (``tf.saved_model.load(out)``), written and verified by the
        shared :meth:`ZooModel.export`:

        * ``generate(prompt, length, temperature, top_k, seed) -> text`` (all scalars:
          ``tf.string``, ``int32``, ``float32``, ``int32``, ``int64``); the same
          text as :meth:`predict` for the same arguments; prompt characters outside the
          vocabulary are dropped, an empty prompt is read as a newline; a negative or
          too large length, a negative/non-finite temperature or a negative top_k
          fail with ``InvalidArgumentError`` naming the argument.
        * ``step(ids int32 [batch], state float32 [batch, depth*units]) ->
          {"logits": [batch, V], "state": [batch, depth*units]}``: one character;
          start from zeros (see the model card for the loop).
        """
        import tensorflow as tf

        fn, signature = self.serving(model, preset)
        step_signature = [tf.TensorSpec([None], tf.int32, name="ids"),
                          tf.TensorSpec([None, model.state_size], tf.float32, name="state")]
        return [("generate", fn, signature), ("step", _tf_step(model), step_signature)]

    def export_extras(self, model, extra_dir):
        """``assets.extra/vocabulary.json``: the vocabulary and state size a loop needs."""
        (extra_dir / "vocabulary.json").write_text(json.dumps(
            {"vocabulary": model.vocabulary, "state_size": model.state_size,
             "start": START, "ids": "id i is vocabulary[i]"}) + "\n")

    def verify_export(self, model, path, verbose=True):
        """Every :meth:`serving_sample` request through ``generate`` in a fresh process
        without grukit must give :meth:`predict`'s text exactly, and ``step`` must match
        :meth:`CharLM.step` (1e-4)."""
        requests = self.serving_sample(model.zoo_preset)
        expected = [generate(model, p, n, t, k, s, unknown="skip") for p, n, t, k, s in requests]
        rng = np.random.default_rng(0)
        ids = rng.integers(0, model.vocabulary_size, 3).astype("int32")
        state = (rng.standard_normal((3, model.state_size)) * 0.5).astype("float32")
        logits, new_state = _runner(model, "step")(ids, state)
        served = _run_fresh(path, requests, ids, state)
        for (p, n, t, k, s), want, got in zip(requests, expected, served["texts"]):
            if want != got:
                raise RuntimeError(
                    f"exported SavedModel generates other text than predict() for prompt "
                    f"{p!r}, length {n}, temperature {t}, top_k {k}, seed {s}:\n"
                    f"  predict: {want!r}\n  export:  {got!r}")
        err = max(float(np.abs(served["logits"] - logits).max()),
                  float(np.abs(served["state"] - new_state).max()))
        if not err <= 1e-4 * max(1.0, float(np.abs(logits).max())):
            raise RuntimeError(f"exported step signature disagrees with CharLM.step (max "
                               f"difference {err}).")
        log.info(f"verified: SavedModel loaded without grukit generates the same text as "
                 f"predict() for {len(requests)} requests; step max |diff| {err:.2e}")

    # -------------------------------------------------------------- CLI
    def add_arguments(self, parser, command):
        if command in ("train", "tune", "evaluate"):
            parser.add_argument("--data", metavar="FILE",
                                help="the Tiny Shakespeare input.txt (default: "
                                     "tinyshakespeare/input.txt under --data-dir / "
                                     "$GRUKIT_DATA_DIR, else tensorflow-datasets)")
        if command == "predict":
            parser.add_argument("--prompt", default="", metavar="TEXT",
                                help="text to continue (default: empty, read as a newline)")
            parser.add_argument("--prompt-file", metavar="FILE",
                                help="read the prompt from FILE ('-': standard input)")
            parser.add_argument("--length", type=int, default=500, metavar="N",
                                help=f"characters to generate (0..{MAX_LENGTH}; default 500)")
            parser.add_argument("--temperature", type=float, default=0.8, metavar="T",
                                help="sampling temperature >= 0 (0: greedy; default 0.8)")
            parser.add_argument("--top-k", type=int, default=0, metavar="K",
                                help="sample among the K most likely characters (0: all)")
            parser.add_argument("--seed", type=int, default=0, metavar="S",
                                help="random seed >= 0 (same seed, same text; default 0)")
            parser.add_argument("--unknown", choices=UNKNOWN, default="error",
                                help="prompt characters outside the vocabulary: error "
                                     "(default) or skip them")
            parser.add_argument("--no-prompt", action="store_true",
                                help="print only the generated text, not the prompt before it")

    def options_from_args(self, args, command):
        return ({"path": args.data} if getattr(args, "data", None) else {}), {}

    def run_predict(self, model, args, load_data, out, err):
        prompt = args.prompt
        if args.prompt_file:
            if args.prompt_file == "-":
                raw = sys.stdin.buffer.read()
            else:
                with open(args.prompt_file, "rb") as f:
                    raw = f.read()
            prompt = raw.decode("utf-8", errors="replace")
        timings = {}
        text = generate(model, prompt, args.length, args.temperature, args.top_k, args.seed,
                        args.unknown, timings=timings)
        out.write(("" if args.no_prompt else prompt) + text + "\n")
        out.flush()
        rate = timings.get("chars_per_s")
        print(f"[char-lm] {args.length} characters in {timings['generate_s']:.2f} s"
              f"{f' ({rate:,.0f} characters/s)' if rate else ''} after a {len(prompt)}-character "
              f"prompt ({timings['prompt_s']:.2f} s); backend {keras.backend.backend()}, "
              f"temperature {args.temperature}, top-k {args.top_k}, seed {args.seed}",
              file=err)
        return 0


