"""Params: groups, defaults, JSON/YAML round trips and clear errors."""
import json
import re

import pytest

from cellfie_caiman.params import Params


def test_defaults_follow_caiman_names():
    p = Params()
    assert p.refine.p == 1 and p.refine.nb == 2
    assert p.quality.min_SNR == 2.5 and p.quality.rval_thr == 0.8
    assert p.summary.batch_frames == 250


def test_detection_defaults_are_those_of_initialize():
    """A pipeline run with default parameters detects exactly as ``initialize`` called with its defaults."""
    import inspect

    from cellfie_caiman.initialize import initialize

    defaults = {k: v.default for k, v in inspect.signature(initialize).parameters.items()}
    d = Params().detection
    assert (d.model, d.min_score, d.prob_threshold, d.max_overlap) == (
        defaults["model"], defaults["min_score"], defaults["prob_threshold"], defaults["max_overlap"])
    assert Params().summary.batch_frames == defaults["batch_frames"]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_round_trip(tmp_path, suffix):
    p = Params.from_dict({"data": {"fr": 7.5, "decay_time": 1.0}, "refine": {"gSig": [5, 6], "p": 2}})
    path = tmp_path / f"params{suffix}"
    p.save(path)
    q = Params.load(path)
    assert q == p
    assert q.refine.gSig == (5, 6)


def test_saved_json_is_grouped(tmp_path):
    path = tmp_path / "p.json"
    Params.from_dict({"quality": {"min_SNR": 3.0}}).save(path)
    d = json.loads(path.read_text())
    assert d["quality"]["min_SNR"] == 3.0
    assert set(d) == {"data", "summary", "detection", "refine", "quality", "output", "nwb"}


def test_unknown_group_and_key_are_named():
    with pytest.raises(ValueError, match="nosuchgroup"):
        Params.from_dict({"nosuchgroup": {}})
    with pytest.raises(ValueError, match="frame_rate"):
        Params.from_dict({"data": {"frame_rate": 30}})


def test_flags_must_be_booleans():
    assert Params.from_dict({"detection": {"tta": False}}).detection.tta is False
    with pytest.raises(ValueError, match="tta"):
        Params.from_dict({"detection": {"tta": "false"}})  # a non-empty string would read as true
    with pytest.raises(ValueError, match="nwb"):
        Params.from_dict({"output": {"nwb": 1}})
    # tta is a flag or a number of orientations
    assert Params.from_dict({"detection": {"tta": 4}}).detection.tta == 4
    with pytest.raises(ValueError, match="tta"):
        Params.from_dict({"detection": {"tta": 3}})


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Params.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        Params.load(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        Params.load(lst)


def test_diameter_from_pixel_size():
    assert Params.from_dict({"data": {"neuron_diameter": 9}}).data.diameter_pixels() == 9.0
    assert Params.from_dict({"data": {"pixel_size": 1.25, "soma_diameter_um": 12.5}}).data.diameter_pixels() == 10.0
    assert Params().data.diameter_pixels() is None


def test_coerce_accepts_the_usual_forms(tmp_path):
    p = Params.from_dict({"data": {"fr": 7.5}})
    assert Params.coerce(None) == Params()
    assert Params.coerce(p) is p
    assert Params.coerce({"data": {"fr": 7.5}}) == p
    p.save(tmp_path / "p.json")
    assert Params.coerce(tmp_path / "p.json") == p
    assert Params.coerce(str(tmp_path / "p.json")) == p
    with pytest.raises(TypeError, match="params"):
        Params.coerce(3)


@pytest.mark.parametrize("group, key, value", [
    ("data", "fr", 0), ("data", "fr", "fast"), ("data", "decay_time", -1.0), ("data", "pixel_size", 0),
    ("data", "neuron_diameter", float("nan")), ("data", "neuron_diameter", 1.5), ("data", "soma_diameter_um", 0),
    ("summary", "batch_frames", 1), ("summary", "batch_frames", 2.5),
    ("detection", "min_score", 50), ("detection", "prob_threshold", -0.1), ("detection", "max_overlap", 0),
    ("detection", "tta", 3), ("detection", "model", 7),
    ("refine", "backend", "cuda"), ("refine", "p", 3), ("refine", "p", True), ("refine", "nb", -1),
    ("refine", "merge_thr", 0), ("refine", "n_iter", 0), ("refine", "chunk_frames", -5), ("refine", "gSig", [0, 4]),
    ("refine", "gSig", [4]), ("quality", "min_SNR", "x"), ("quality", "rval_thr", float("inf")),
    ("output", "gif_frames", 0)])
def test_a_setting_out_of_range_is_named(group, key, value):
    """Out-of-range settings fail when the parameters are built, naming the setting, and a Params changed by hand
    fails its check, and its coercion, the same way."""
    with pytest.raises(ValueError, match=key):
        Params.from_dict({group: {key: value}})
    p = Params()
    setattr(getattr(p, group), key, value)
    with pytest.raises(ValueError, match=key):
        p.check()
    with pytest.raises(ValueError, match=key):  # what run, refine and seeded_cnmf do with the parameters given
        Params.coerce(p)


def test_thresholds_past_their_range_switch_a_test_off_and_are_allowed():
    p = Params.from_dict({"quality": {"rval_thr": 2.0, "min_cnn_thr": 2.0, "min_SNR": 1e9},
                          "refine": {"merge_thr": 1.5, "gSig": [4.0, 5]}})
    assert p.quality.rval_thr == 2.0 and p.refine.merge_thr == 1.5
    assert p.refine.gSig == (4, 5) and all(type(v) is int for v in p.refine.gSig)


def test_run_checks_its_parameters_before_reading_the_movie(tmp_path):
    """A bad setting fails before the movie is opened (here it does not exist) and before anything is written."""
    from cellfie_caiman.pipeline import run

    p = Params()
    p.refine.n_iter = 0
    with pytest.raises(ValueError, match="refine.n_iter"):
        run(tmp_path / "missing.tif", tmp_path / "out", p, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_soma_under_two_pixels_is_refused_however_it_is_given():
    with pytest.raises(ValueError, match="pixel_size"):
        Params.from_dict({"data": {"pixel_size": 10.0, "soma_diameter_um": 12.0}})  # 1.2 px
    assert Params.from_dict({"data": {"pixel_size": 1.0}}).data.diameter_pixels() == 12.0


def test_frame_rate_of_a_path_opens_the_dataset_var_name_names(tmp_path):
    """A file holding several movies: the rate is looked up in the one ``data.var_name`` chooses, not refused as
    ambiguous (HDF5 records no rate, so the default is assumed, with its warning)."""
    import h5py
    import numpy as np

    from cellfie_caiman.params import DEFAULT_FR

    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        f["raw"] = np.zeros((4, 6, 5), np.float32)
        f["corrected"] = np.ones((4, 6, 5), np.float32)
    data = Params.from_dict({"data": {"var_name": "corrected"}}).data
    with pytest.warns(UserWarning, match="assuming"):
        assert data.frame_rate(path) == DEFAULT_FR


def test_a_model_given_as_a_path_is_saved_as_its_name(tmp_path):
    from pathlib import Path

    p = Params.from_dict({"detection": {"model": Path("my_model.npz")}})
    p.save(tmp_path / "params.json")
    assert Params.load(tmp_path / "params.json").detection.model == "my_model.npz"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["params.json"]  # no temporary file left


@pytest.mark.parametrize("gsig", [3, "3,3", (3,), (3, 3, 3)])
def test_gsig_that_is_not_two_half_sizes_is_named(gsig):
    with pytest.raises(ValueError, match="refine.gSig must be two half-sizes"):
        Params.from_dict({"refine": {"gSig": gsig}})


@pytest.mark.parametrize("text", ["data: [1, 2]\n", "data: fast\n", "data: 5\n"])
def test_a_group_that_is_not_a_mapping_is_named(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="group 'data' must be a mapping"):
        Params.load(path)


def test_unknown_groups_named_by_text_and_by_number_are_named(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("1: 2\nfoo: 3\n")
    with pytest.raises(ValueError, match="unknown parameter group.*'foo'"):
        Params.load(path)


def test_whole_number_counts_given_as_floats_become_integers(tmp_path):
    counts = {"summary": {"batch_frames": 100.0}, "refine": {"p": 2.0, "nb": 1.0, "n_iter": 3.0, "chunk_frames": 64.0},
              "output": {"gif_frames": 20.0}, "detection": {"tta": 4.0}}
    p = Params.from_dict(counts)
    for group, values in counts.items():
        for key, value in values.items():
            got = getattr(getattr(p, group), key)
            assert type(got) is int and got == value, (group, key, got)
    p.save(tmp_path / "p.json")
    assert type(json.loads((tmp_path / "p.json").read_text())["output"]["gif_frames"]) is int
    assert Params.from_dict({"detection": {"tta": True}}).detection.tta is True  # a flag stays a flag


@pytest.mark.parametrize("name, text", [
    ("p.json", '{"data": {"fr": 7.5}, "data": {"decay_time": 1.0}}'),
    ("p.json", '{"data": {"fr": 7.5, "fr": 15}}'),
    ("p.yaml", "data:\n  fr: 7.5\ndata:\n  decay_time: 1.0\n"),
    ("p.yaml", "data:\n  fr: 7.5\n  fr: 15\n")])
def test_a_group_or_key_given_twice_in_a_file_is_an_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=r"(data|fr).* twice"):
        Params.load(path)


def test_a_yaml_merge_key_may_be_overridden(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("data: &base {fr: 7.5, decay_time: 1.0}\nrefine:\n  nb: 1\n  p: 2\n"
                    "quality: {min_SNR: 3.0}\n")
    assert Params.load(path).data.fr == 7.5
    path.write_text("data:\n  <<: {fr: 7.5, decay_time: 1.0}\n  fr: 15\n")
    p = Params.load(path)
    assert p.data.fr == 15 and p.data.decay_time == 1.0


# ------------------------------------------------------------------------------------ numbers written as text

@pytest.mark.parametrize("text", ["1e3", "1.0e3", "1E3", "-2e-3", "1e-3", "2.5e-1", ".5e2", "+3e0"])
def test_yaml_numbers_in_scientific_notation_are_numbers(tmp_path, text):
    """PyYAML follows YAML 1.1, where 1e3 and 1.0e3 (no sign in the exponent) are text: a parameter file read them as
    numbers, as YAML 1.2, JSON and Python do."""
    path = tmp_path / "p.yaml"
    path.write_text(f"quality:\n  min_SNR: {text}\ndata:\n  var_name: mov\n")
    p = Params.load(path)
    assert p.quality.min_SNR == float(text) and isinstance(p.quality.min_SNR, float)
    assert p.data.var_name == "mov"  # text stays text
    p.save(tmp_path / "again.yaml")
    assert Params.load(tmp_path / "again.yaml") == p


def test_json_numbers_in_scientific_notation_are_numbers(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"quality": {"min_SNR": 1e3}, "refine": {"chunk_frames": 1e3}}')
    p = Params.load(path)
    assert p.quality.min_SNR == 1000.0 and p.refine.chunk_frames == 1000 and type(p.refine.chunk_frames) is int


@pytest.mark.parametrize("name, text", [("p.json", '{"quality": {"min_SNR": "1e3"}}'),
                                        ("p.yaml", "quality:\n  min_SNR: '1e3'\n"),
                                        ("p.yaml", 'quality:\n  min_SNR: "2.5"\n')])
def test_a_number_in_quotes_is_refused_saying_why(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=r"quality\.min_SNR must be a number.*text.*without quotes"):
        Params.load(path)


# ----------------------------------------------------------------------------- neuron_diameter and pixel_size

def test_neuron_diameter_and_a_disagreeing_pixel_size_warn_naming_both():
    data = Params.from_dict({"data": {"neuron_diameter": 12, "pixel_size": 2.0, "soma_diameter_um": 12.0}}).data
    with pytest.warns(UserWarning, match=r"neuron_diameter \(12 px\).*pixel_size \(2 .*6 px.*using 12 px"):
        assert data.diameter_pixels(warn=True) == 12.0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.diameter_pixels() == 12.0  # warn only where asked: once per run
        agreeing = Params.from_dict({"data": {"neuron_diameter": 10, "pixel_size": 1.2}}).data  # 12 um / 1.2 = 10 px
        assert agreeing.diameter_pixels(warn=True) == 10.0


# ------------------------------------------------------------------------------- paths in a parameter file

@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_relative_model_path_in_a_file_is_relative_to_the_file(tmp_path, monkeypatch, suffix):
    folder = tmp_path / "analysis"
    (folder / "weights").mkdir(parents=True)
    (folder / "weights" / "mine.npz").write_bytes(b"")
    Params.from_dict({"detection": {"model": "weights/mine.npz"}}).save(folder / f"p{suffix}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    p = Params.load(folder / f"p{suffix}")
    assert p.detection.model == str(folder / "weights" / "mine.npz")
    monkeypatch.chdir(folder)  # the same from the file's own folder, or with a relative path to the file
    assert Params.load(f"p{suffix}").detection.model == str(folder / "weights" / "mine.npz")


def test_model_names_and_absolute_paths_in_a_file_are_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for model in ("default", str(tmp_path / "nowhere" / "m.npz")):
        Params.from_dict({"detection": {"model": model}}).save(tmp_path / "p.json")
        assert Params.load(tmp_path / "p.json").detection.model == model


def test_a_model_path_relative_to_the_working_folder_only_is_used_with_a_warning(tmp_path, monkeypatch):
    """params.json files written before paths were recorded absolute name the model as given on the command line."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "mine.npz").write_bytes(b"")
    Params.from_dict({"detection": {"model": "mine.npz"}}).save(tmp_path / "cfg" / "p.json")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=r"mine\.npz.*not in .*cfg.*working folder"):
        assert Params.load(tmp_path / "cfg" / "p.json").detection.model == str(tmp_path / "mine.npz")


# ---------------------------------------------------------------------------------------------------- nwb

NWB = {"subject_id": "m7", "species": "Mus musculus", "sex": "F", "age": "P60D", "strain": "C57BL/6J",
       "genotype": "Ai93", "session_description": "V1, awake", "session_start_time": "2023-05-17T09:30:00+02:00",
       "indicator": "GCaMP6s", "location": "VISp", "excitation_lambda": 920.0, "emission_lambda": 510.0}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_nwb_session_and_subject_round_trip(tmp_path, suffix):
    assert all(v is None for v in Params().to_dict()["nwb"].values())
    p = Params.from_dict({"nwb": NWB})
    assert {k: v for k, v in p.to_dict()["nwb"].items() if v is not None} == NWB
    p.save(tmp_path / f"p{suffix}")
    assert Params.load(tmp_path / f"p{suffix}") == p


def test_a_yaml_timestamp_is_read_as_text(tmp_path):
    """YAML reads an unquoted timestamp as a datetime: kept as ISO 8601 text, as JSON needs it."""
    (tmp_path / "p.yaml").write_text("nwb:\n  session_start_time: 2023-05-17 09:30:00+02:00\n")
    assert Params.load(tmp_path / "p.yaml").nwb.session_start_time == "2023-05-17T09:30:00+02:00"


@pytest.mark.parametrize("key, value, why", [
    ("sex", "female", "one of 'M', 'F', 'U', 'O'"), ("age", "60 days", "ISO 8601 duration.*P60D"),
    ("age", "P", "ISO 8601"), ("session_start_time", "2023-05-17T09:30:00", "time zone"),
    ("session_start_time", "yesterday", "ISO 8601"), ("subject_id", 7, "text.*quote"), ("species", "", "text"),
    ("excitation_lambda", -920, "nm"), ("emission_lambda", "510", "number")])
def test_a_bad_nwb_setting_is_named(key, value, why):
    with pytest.raises(ValueError, match=rf"nwb\.{key}.*{why}"):
        Params.from_dict({"nwb": {key: value}})


@pytest.mark.parametrize("age", ["P60D", "P2Y3M", "P10W", "P1DT12H", "P0.5Y", "P60D/P90D"])
def test_iso_8601_ages_are_accepted(age):
    assert Params.from_dict({"nwb": {"age": age}}).nwb.age == age


def test_text_that_yaml_would_read_as_a_number_round_trips(tmp_path):
    """An animal called 3e2 stays text in a saved YAML file (quoted), though YAML 1.2 reads 3e2 as a number."""
    p = Params.from_dict({"nwb": {"subject_id": "3e2"}, "data": {"var_name": "1e-3"}})
    p.save(tmp_path / "p.yaml")
    assert Params.load(tmp_path / "p.yaml") == p


# ------------------------------------------------------------------------------------------- YAML integers

def _yaml_with(tmp_path, written: str):
    path = tmp_path / "p.yaml"
    path.write_text(f"output:\n  gif_frames: {written}\nsummary:\n  batch_frames: {written}\ndata:\n  fr: {written}\n"
                    f"refine:\n  gSig: [{written}, {written}]\nnwb:\n  subject_id: '{written}'\n")
    return path


@pytest.mark.parametrize("written, value", [("010", 10), ("007", 7), ("+012", 12), ("030", 30), ("0o10", 8),
                                            ("0x1E", 30)])
def test_yaml_integers_are_read_as_yaml_1_2_reads_them(tmp_path, written, value):
    """PyYAML follows YAML 1.1, where 010 is octal: gif_frames 010 gave 8 frames and fr 030 a frame rate of 24 Hz,
    silently. YAML 1.2 (and every person) reads 010 as ten; 0o10 is YAML 1.2's octal, 0x1E its hexadecimal."""
    p = Params.load(_yaml_with(tmp_path, written))
    assert p.output.gif_frames == p.summary.batch_frames == p.data.fr == value
    assert p.refine.gSig == (value, value)
    assert p.nwb.subject_id == written  # quoted: text, as written


@pytest.mark.parametrize("written", ["1:30", "0b11", "1_000"])
def test_integers_only_yaml_1_1_reads_are_refused_not_misread(tmp_path, written):
    """YAML 1.1's base 60 (1:30 was 90), binary and 1_000 are text in YAML 1.2: refused where a number belongs,
    naming what was written, and kept as written where text belongs."""
    path = tmp_path / "p.yaml"
    path.write_text(f"output:\n  gif_frames: {written}\n")
    with pytest.raises(ValueError, match=rf"output\.gif_frames .*'{re.escape(written)}'"):
        Params.load(path)
    path.write_text(f"nwb:\n  subject_id: {written}\n")
    assert Params.load(path).nwb.subject_id == written


def test_an_underscore_in_a_number_is_named_in_the_error(tmp_path):
    (tmp_path / "p.yaml").write_text("refine:\n  chunk_frames: 1_000\n")
    with pytest.raises(ValueError, match=r"refine\.chunk_frames must be a number.*'1_000'.*without '_' \(1000\)"):
        Params.load(tmp_path / "p.yaml")


@pytest.mark.parametrize("text", ["010", "0o10", "0x1E", "1_000", "1:30", "0b11", "+012", ".5", "1e3"])
def test_text_that_either_yaml_reads_as_a_number_is_quoted_when_saved(tmp_path, text):
    """A saved YAML file keeps such text text both for this package and for a YAML 1.1 reader (PyYAML)."""
    import yaml

    p = Params.from_dict({"nwb": {"subject_id": text}})
    p.save(tmp_path / "p.yaml")
    assert Params.load(tmp_path / "p.yaml") == p
    assert yaml.safe_load((tmp_path / "p.yaml").read_text())["nwb"]["subject_id"] == text


# ------------------------------------------------------------------- nwb: who recorded the session, and where

PEOPLE = {"experimenter": ["Doe, Jane", "Roe, Richard A."], "lab": "Smith lab", "institution": "University of Oslo",
          "experiment_description": "orientation tuning in V1", "keywords": ["two-photon", "V1"]}


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_nwb_experimenter_lab_and_institution_round_trip(tmp_path, suffix):
    """NWB and DANDI want the experimenter, lab and institution of a session: the nwb group gives them."""
    p = Params.from_dict({"nwb": PEOPLE})
    assert {k: p.to_dict()["nwb"][k] for k in PEOPLE} == PEOPLE
    p.save(tmp_path / f"p{suffix}")
    assert Params.load(tmp_path / f"p{suffix}") == p
    one = Params.from_dict({"nwb": {"experimenter": "Doe, Jane", "keywords": "calcium imaging"}})
    assert one.nwb.session()["experimenter"] == ["Doe, Jane"] and one.nwb.session()["keywords"] == ["calcium imaging"]


def test_an_experimenter_written_in_yaml_keeps_its_comma(tmp_path):
    (tmp_path / "p.yaml").write_text("nwb:\n  experimenter: Doe, Jane\n  lab: Smith lab\n")
    assert Params.load(tmp_path / "p.yaml").nwb.experimenter == "Doe, Jane"


@pytest.mark.parametrize("key, value, why", [
    ("experimenter", 7, "text.*or a list"), ("experimenter", [], "empty"), ("experimenter", ["Doe, Jane", ""], "empty"),
    ("experimenter", ["Doe, Jane", 3], "text"), ("lab", "", "text"), ("institution", 1, "text"),
    ("experiment_description", ["a"], "text"), ("keywords", [None], "text"), ("keywords", {"a": 1}, "text")])
def test_a_bad_nwb_person_or_place_is_named(key, value, why):
    with pytest.raises(ValueError, match=rf"nwb\.{key}.*{why}"):
        Params.from_dict({"nwb": {key: value}})
