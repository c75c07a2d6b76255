"""Train and score every row of the paper's tables and the fair competitors."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np
import torch
from joblib import Parallel, delayed, effective_n_jobs

from pdmer.evaluation import (
    collapse_problems,
    plan_episodes,
    prediction_spread,
    run_episodes,
    score_episodes,
    scored_rows,
)
from pdmer.evaluation.competitors import (
    CalibratedPredictor,
    choose_calibration,
    choose_fine_tuning,
    fine_tuned,
    tuning_episodes,
)
from pdmer.experiments.hardware import describe_machine, versions
from pdmer.experiments.presets import MODELS, PRESETS, parameter_counts
from pdmer.experiments.reporting import BenchmarkResult
from pdmer.experiments.splits import SPLITS, data_home_for, load_split
from pdmer.experiments.tables import MAML, METRICS, PAPER, table_rows
from pdmer.features.frontend import AudioFeatures
from pdmer.meta.methods import get_method
from pdmer.scoring import evaluate

__all__ = ["DATASETS", "TASKS", "convergence", "run_benchmark"]

DATASETS = ("synthetic", "deam", "pmemo")
TASKS = ("dmer", "pdmer")
PROTOCOLS = ("other-songs", "same-song")


def run_benchmark(dataset="synthetic", task="pdmer", models=None, ablations=False,
                  protocol="other-songs", preset="small", seed=0, output=None,
                  data_home=None, cache_dir=None, device="auto", verbose=1, log=print,
                  command=None, split="songs", unseen_listeners=False, data_params=None,
                  estimator_params=None, mean_label_rows=True, variants=None,
                  train_without_kinds=(), resume=False, n_jobs=1) -> BenchmarkResult:
    """Train and score DSAML, its baselines and the fair competitors.

    Parameters
    ----------
    dataset : {"synthetic", "deam", "pmemo"}, default="synthetic"
    task : {"dmer", "pdmer"}, default="pdmer"
    models : sequence of str, optional
        Keys of :data:`~pdmer.experiments.MODELS`; all by default.
    ablations : bool, default=False
        Add the DSAML ablations (Table 3 for dmer, Table 4 for pdmer).
    protocol : {"other-songs", "same-song"}, default="other-songs"
        How test listeners are personalized and scored (pdmer only; see
        :func:`pdmer.evaluation.plan_episodes`).
    preset : {"tiny", "small", "paper"}, default="small"
    seed : int, default=0
        Seeds data generation, the split, model initialisation and training,
        and the support draw: a run repeats exactly on the CPU.
    output : str, optional
        Folder for ``results.md``, ``results.csv``, ``results.png``,
        ``settings.json`` and ``result.json`` (and the synthetic data unless
        ``data_home``).
    data_home : str, optional
        Where the data set is (DEAM/PMEmo) or is generated (synthetic;
        default ``<output>/data``).
    cache_dir : str, optional
        Feature cache of the front end (:class:`~pdmer.features.AudioFeatures`).
    device : str, default="auto"
    verbose : int, default=1
        Progress bars of training.
    log : callable, default=print
        Receives progress messages and the run's notes.
    command : str, optional
        The command line to record in the outputs.
    split : {"songs", "listeners"}, default="songs"
        Synthetic PDMER: hold out listeners and songs (scored songs unseen in
        training), or listeners only (see :mod:`pdmer.experiments.splits`).
    unseen_listeners : bool, default=False
        Drop test annotators who also annotated training songs (DEAM).
    data_params : dict, optional
        Synthetic generator parameters on top of the preset's (the
        robustness suite's data conditions).
    estimator_params : dict, optional
        Estimator parameters on top of the preset's, for every model (e.g.
        ``{"n_episodes": 240}``).
    mean_label_rows : bool, default=True
        PDMER: include the paper's plain rows trained on mean labels.
    variants : dict of str -> dict, optional
        PDMER: more personalized rows per model, each trained with its own
        estimator parameters on top of the meta-trained row's (e.g.
        ``{"MAML": {"meta_learning": "maml"}}``; role "variant").
    train_without_kinds : sequence of str, default=()
        Synthetic PDMER: train without the listeners of these kinds
        (:data:`pdmer_datasets.synthetic.LISTENER_KINDS`), to score test
        listeners of a kind training never saw.
    resume : bool, default=False
        Return the result already in ``output`` when it was made with the
        same arguments, instead of running again.
    n_jobs : int, default=1
        Models trained at once, in joblib's active backend (-1: one per
        core). Each keeps the caller's torch thread count, so with several
        jobs set ``torch.set_num_threads`` to cores / n_jobs. Results do not
        depend on it; progress bars show only with ``n_jobs=1``.

    Returns
    -------
    BenchmarkResult
    """
    started = time.perf_counter()
    models = _check_choices(models, dataset, task, protocol, preset, seed, split)
    request = dict(dataset=dataset, task=task, models=models, ablations=ablations,
                   protocol=protocol if task == "pdmer" else None, preset=preset, seed=seed,
                   split=split if task == "pdmer" else None,
                   unseen_listeners=unseen_listeners, data_params=data_params or {},
                   estimator_params=estimator_params or {}, mean_label_rows=mean_label_rows,
                   variants=variants or {}, train_without_kinds=list(train_without_kinds),
                   device=device)
    if resume and output is not None:
        done = _finished(output, request)
        if done is not None:
            log(f"Reusing the finished run in {output}.")
            return done
    config = PRESETS[preset]
    data_home = data_home_for(dataset, data_home, output)
    log(f"Loading {dataset} ({task}) ...")
    data = load_split(dataset, task, config, seed, data_home, split=split,
                      unseen_listeners=unseen_listeners, data_params=data_params,
                      train_without_kinds=train_without_kinds)
    for note in data.notes:
        log(f"Note: {note}")
    waveforms = any(MODELS[k][1]._input == "wave" for k in models)
    front_end = AudioFeatures(**{"n_jobs": -1, **{k: v for k, v in config.features.items()
                                                 if k != "waveform_rate" or waveforms}},
                              frame_offset=data.train.frame_offset, cache_dir=cache_dir)
    log(f"Extracting features of {len(set(map(str, data.train.X + data.test.X)))} songs ...")
    features = _features(front_end, data.train.X + data.test.X)

    episodes = None
    if task == "pdmer":
        episodes = plan_episodes(data.test.annotators, protocol=protocol,
                                 support_frames=config.support_frames,
                                 lengths=[len(v) for v in data.test.y], scored=data.scored,
                                 random_state=seed)
        if not episodes:
            raise ValueError(
                f"No test listener can be scored with the {protocol} protocol: "
                + ("no listener has a song to adapt on and an unseen song to score."
                   if protocol == "other-songs" else
                   f"every scored song is shorter than {config.support_frames + 2} frames."))
    specs = table_rows(task, models, ablations, mean_label_rows, variants)
    fitted, choices = _fit_all(specs, {**config.training, **(estimator_params or {})},
                               config.models, data.train, features, seed, device, verbose,
                               n_jobs, log, competitors=task == "pdmer")
    kinds = (sorted({data.listener_kinds[e.listener] for e in episodes
                     if e.listener in data.listener_kinds}) if episodes else [])
    rows = []
    for spec in specs:
        if spec.model is None:
            row = _song_mean_row(spec, data, episodes, dataset, kinds)
            if row is not None:
                rows.append(row)
            elif task == "pdmer":
                data.notes.append("No scored song was in the training data, so the training "
                                  "listeners' mean curve of the song is not a competitor.")
                log(f"Note: {data.notes[-1]}")
            continue
        estimator, seconds = fitted[(spec.model, spec.params)]
        X_test = _inputs(features, estimator, data.test.X)
        if task == "dmer":
            truth = data.test.y
            predictions = [p[:len(t)] for p, t in zip(estimator.predict(X_test), truth)]
            listeners = None
        else:
            predictor, adapt, chosen = estimator, _fine_tune_like_personalization(fitted, spec), None
            if spec.competitor is not None:
                predictor, adapt, chosen = _competitor(
                    spec, estimator, choices[(spec.model, spec.params)][spec.competitor])
            truth, predictions, listeners = run_episodes(predictor, X_test, data.test.y,
                                                         episodes, adapt=spec.adapt, **adapt)
        row = _row(spec, truth, predictions, estimator, seconds, dataset,
                   _kind_scores(truth, predictions, listeners, data.listener_kinds, kinds))
        if task == "pdmer" and spec.adapt:
            row["chosen_on_training_listeners"] = chosen
            row["adapt_ms"] = _adaptation_ms(predictor, X_test, data.test.y, episodes, **adapt)
        rows.append(row)
        log(f"  {spec.table} | {spec.label}: CCC arousal {row['ccc_arousal']:.3f}, valence "
            f"{row['ccc_valence']:.3f} (spread {row['spread']:.2f})"
            + (" COLLAPSED: predictions barely move within songs" if row["collapsed"] else ""))

    parameters = _parameter_counts(fitted)
    device_type = next(iter(fitted.values()))[0].device_.type if fitted else "cpu"
    settings = {
        **request, "data_home": None if data_home is None else os.path.abspath(data_home),
        "paper_dataset": "deam" if dataset == "synthetic" else dataset,
        "support_frames": config.support_frames if protocol == "same-song" else None,
        "data": {"summary": data.summary,
                 "synthetic": {**config.data, **(data_params or {})}
                 if dataset == "synthetic" else None},
        "notes": data.notes,
        "support": None if episodes is None else _support_songs(episodes, data.test),
        "features": front_end.get_params(),
        "estimators": [_fit_settings(k, e, s) for k, (e, s) in fitted.items()],
        "command": command or (f"pdmer.experiments.run_benchmark(dataset={dataset!r}, "
                               f"task={task!r}, preset={preset!r}, seed={seed})"),
        "seconds": round(time.perf_counter() - started, 1),
        "hardware": describe_machine(device_type), "versions": versions(),
    }
    result = BenchmarkResult(rows, parameters, settings,
                             estimators={key: est for key, (est, _) in fitted.items()},
                             split=data, episodes=episodes, features=features)
    if output is not None:
        result.write(output)
    return result


def _check_choices(models, dataset, task, protocol, preset, seed, split) -> list:
    for name, value, allowed in (("dataset", dataset, DATASETS), ("task", task, TASKS),
                                 ("protocol", protocol, PROTOCOLS),
                                 ("preset", preset, tuple(PRESETS)), ("split", split, SPLITS)):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    if models is None:
        return list(MODELS)
    models = [str(m).lower() for m in models]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"Unknown model(s) {', '.join(unknown) or '(none given)'}; choose "
                         f"from {', '.join(MODELS)}.")
    return list(dict.fromkeys(models))


def _finished(output, request):
    """The result in ``output`` if it was made with ``request``, else None."""
    result = BenchmarkResult.read(output)
    if result is None or any(result.settings.get(k) != v
                             for k, v in _jsonable_request(request).items()):
        return None
    return result


def _jsonable_request(request):
    import json

    return json.loads(json.dumps(request, default=str))


def _features(front_end, X):
    """Features of each distinct song, with raw audio when a waveform model runs."""
    paths = list(dict.fromkeys(str(x) for x in X))
    return dict(zip(paths, front_end.transform(paths)))


def _inputs(features, estimator, X):
    """A model's inputs: log-mel models get the features without raw audio."""
    songs = [features[str(x)] for x in X]
    if type(estimator)._input == "wave":
        return songs
    return [replace(f, waveforms=None, waveform_rate=None) if f.waveforms is not None else f
            for f in songs]


def _fit_all(specs, training, architectures, train, features, seed, device, verbose, n_jobs,
             log, competitors=False) -> tuple:
    """Every distinct model of ``specs`` fitted, and its competitors' settings chosen.

    Returns ``fitted``, (model, params) -> (estimator, seconds), and
    ``choices``, (model, params) -> competitor -> settings (with
    ``competitors``). A model's competitors are chosen in its own job, right
    after it is fitted: the fine-tuning grid then runs while other models
    still train.
    """
    distinct, wanted = {}, {}
    for spec in specs:
        if spec.model is not None:
            key = (spec.model, spec.params)
            distinct.setdefault(key, spec)
            if competitors and spec.competitor is not None:
                wanted.setdefault(key, []).append(spec.competitor)
    for spec in distinct.values():
        log(f"Training {spec.label} ({dict(spec.params)}) ...")
    threads = torch.get_num_threads()
    alone = effective_n_jobs(n_jobs) == 1 or len(distinct) < 2
    done = Parallel(n_jobs=1 if alone else n_jobs)(
        delayed(_fit)(spec, training, architectures[spec.model], train, features, seed, device,
                      verbose if alone else 0, threads, wanted.get(key, ()))
        for key, spec in distinct.items())
    fitted = {key: (estimator, seconds) for key, (estimator, seconds, _) in zip(distinct, done)}
    return fitted, {key: chosen for key, (_, _, chosen) in zip(distinct, done)}


def _fit(spec, training, architecture, train, features, seed, device, verbose, threads=None,
         competitors=()):
    """``(estimator, fit seconds, {competitor: settings chosen on training listeners})``."""
    if threads is not None:  # a joblib worker starts with its own thread count
        torch.set_num_threads(threads)
    cls = MODELS[spec.model][1]
    params = {**training, **architecture, **dict(spec.params),
              "random_state": seed, "device": device, "verbose": verbose}
    estimator = cls(**params)
    X_train = _inputs(features, estimator, train.X)
    started = time.perf_counter()
    estimator.fit(X_train, train.y, annotators=train.annotators)
    seconds = time.perf_counter() - started
    return estimator, seconds, {competitor: _choose(competitor, estimator, X_train, train, seed)
                                for competitor in competitors}


def _fine_tune_like_personalization(fitted, spec):
    """Steps and step size of a fine-tuned row: those of the model's personalization."""
    if not spec.adapt or spec.role == "personalized":
        return {}
    meta = fitted.get((spec.model, tuple(sorted(MAML.items()))))
    if meta is None:
        return {}
    return {"steps": meta[0].personalization_steps_, "lr": meta[0].resolved_params_["inner_lr"]}


def _choose(competitor, estimator, X_train, train, seed) -> dict:
    """A competitor's settings, chosen on the training listeners the estimator held out."""
    tuning = tuning_episodes(estimator, train, random_state=seed)
    choose = choose_calibration if competitor == "calibration" else choose_fine_tuning
    return choose(estimator, X_train, train.y, tuning)[0]


def _competitor(spec, estimator, settings):
    """``(predictor, adaptation settings, what was chosen)`` of a competitor row."""
    if spec.competitor == "calibration":
        return (CalibratedPredictor(estimator, settings["strength"], settings["fit"]), {},
                f"{settings['fit']}, strength {settings['strength']:g}")
    return (fine_tuned(estimator, settings["inner_params"]),
            {"steps": settings["steps"], "lr": settings["lr"]},
            f"{settings['steps']} steps, lr {settings['lr']:g}, "
            f"{settings['inner_params']} parameters")


def _adaptation_ms(predictor, X, y, episodes, steps=None, lr=None, n_listeners=3) -> float:
    """Median milliseconds of one listener's adaptation (its support songs), first listeners."""
    times = []
    for episode in [e for e in episodes if e.support][:n_listeners]:
        songs = [X[r] for r in episode.support]
        labels = [y[r] for r in episode.support]
        if episode.support_frames is not None:  # the same-song protocol
            songs = [s.crop(0, episode.support_frames) for s in songs]
            labels = [v[: episode.support_frames] for v in labels]
        started = time.perf_counter()
        if callable(getattr(predictor, "adapt_listener", None)):
            predictor.adapt_listener(songs, labels, steps=steps, lr=lr)
        else:
            predictor.personalize(songs, labels)
            predictor.reset_personalization()
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 1) if times else None


def _kind_scores(truth, predictions, listeners, listener_kinds, kinds) -> dict:
    """Mean per-song CCC of each listener kind (``ccc_mean_<kind>``; None where none scored)."""
    out = {}
    for kind in kinds:
        pick = [i for i, who in enumerate(listeners or ()) if listener_kinds.get(who) == kind]
        out[f"ccc_mean_{kind}"] = (None if not pick else round(float(score_episodes(
            [truth[i] for i in pick], [predictions[i] for i in pick],
            [listeners[i] for i in pick])), 6))
    return out


def convergence(estimator) -> dict:
    """Best episode, episodes run, best validation CCC and whether it still improved.

    ``best_episode`` counts from 1 (the model kept is that of episode
    ``best_episode`` of ``episodes_run``); ``still_improving`` is True when the
    best validation score came at the last validation, so the model may be
    undertrained, and None without a validation split.
    """
    run = estimator.n_episodes_run_
    checks = (getattr(estimator, "history_", None) or {}).get("validation_episode") or []
    best = getattr(estimator, "best_episode_", None)
    return {"best_episode": None if best is None else int(best) + 1, "episodes_run": int(run),
            "best_validation_ccc": getattr(estimator, "best_validation_ccc_", None),
            "still_improving": None if not checks or best is None else best == checks[-1]}


def _row(spec, truth, predictions, estimator, seconds, dataset, by_kind=None) -> dict:
    scores = evaluate(truth, predictions)
    spread = prediction_spread(truth, predictions)
    paper_set = "deam" if dataset == "synthetic" else dataset
    paper = PAPER[spec.table].get(paper_set, {}).get(spec.paper)
    return {"table": spec.table, "row": spec.label, "role": spec.role,
            "model": MODELS[spec.model][0] if estimator is not None else "-",
            "meta_learning": (None if estimator is None else
                              get_method(estimator.resolved_params_["meta_learning"]).name),
            "tasks": getattr(estimator, "tasks_", None), "personalized": spec.adapt,
            **{m: round(scores[m], 6) for m in METRICS},
            "ccc_mean": round(scores["ccc_mean"], 6), **(by_kind or {}),
            "chosen_on_training_listeners": None, "adapt_ms": None,
            "spread": round(spread, 4),
            "collapsed": bool(collapse_problems(spread)), "n_scored": len(truth),
            **(convergence(estimator) if estimator is not None else dict.fromkeys(
                ("best_episode", "episodes_run", "best_validation_ccc", "still_improving"))),
            **{f"paper_{m}": None if paper is None else paper[i] for i, m in enumerate(METRICS)},
            "n_parameters": getattr(estimator, "n_parameters_", None),
            "fit_seconds": None if seconds is None else round(seconds, 2)}


def _song_mean_row(spec, data, episodes, dataset, kinds):
    """The training listeners' mean curve of each scored song, where it was trained on."""
    if episodes is None:
        return None
    means = data.train.mean_labels()
    curves = dict(zip(means.song_ids, means.y))
    rows = [r for r in scored_rows(episodes) if data.test.song_ids[r] in curves]
    if not rows:
        return None
    predictor = _SongMeanCurve(curves)
    keep = set(rows)
    subset = [replace(e, query=tuple(r for r in e.query if r in keep)) for e in episodes]
    subset = [e for e in subset if e.query]
    items = list(zip(data.test.song_ids, map(len, data.test.y)))
    truth, predictions, listeners = run_episodes(predictor, items, data.test.y, subset,
                                                 adapt=False)
    spec = replace(spec, label=spec.label if len(rows) == len(scored_rows(episodes))
                   else f"{spec.label} ({len(rows)} of {len(scored_rows(episodes))} pairs)")
    return _row(spec, truth, predictions, None, None, dataset,
                _kind_scores(truth, predictions, listeners, data.listener_kinds, kinds))


class _SongMeanCurve:
    """Predicts a song's mean training curve, its last value repeated if it is shorter."""

    def __init__(self, curves):
        self.curves = curves

    def predict(self, items):
        """``items``: (song id, label frames) pairs."""
        return [np.pad(self.curves[s][:n], ((0, max(0, n - len(self.curves[s]))), (0, 0)),
                       mode="edge") for s, n in items]


def _support_songs(episodes, test) -> dict:
    return {e.listener: [str(test.song_ids[r]) for r in e.support] for e in episodes}


def _parameter_counts(fitted) -> list:
    out, seen = [], set()
    for (key, _), (estimator, _) in fitted.items():
        if key in seen:
            continue
        seen.add(key)  # the first fit of a model has its full architecture
        name, cls = MODELS[key]
        out.append({"model": name, "input": "raw waveform" if cls._input == "wave" else (
            "log-mel patches + global embeddings" if key == "dsaml" else "log-mel patches"),
            "n_parameters": estimator.n_parameters_,
            "paper_n_parameters": parameter_counts([key])[key]})
    return out


def _fit_settings(key, estimator, seconds) -> dict:
    params = estimator.get_params(deep=False)
    return {"model": MODELS[key[0]][0], "estimator": type(estimator).__name__,
            "params": params, "fit_seconds": round(seconds, 2), **convergence(estimator),
            "n_parameters": estimator.n_parameters_,
            "personalization_choices": getattr(estimator, "personalization_choices_", {})}
