"""The train form and its live curve (issue 14 §2): the form launches a train job with its options, each
epoch lands in the job's outputs, and the job page draws them with plotly."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from generation.models import MashupDB
from workbench import jobs
from workbench.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_user("exp", password="x-long-password", is_staff=True))
    MashupDB.objects.create(name="tr")
    return client


def test_the_train_form_launches_a_job_with_its_options(staff):
    r = staff.post(reverse("workbench:launch", args=["train"]), {
        "db": "tr", "arch": "postmix", "lsro": "on", "width": "0.25", "recipe": "pitch_band", "epochs": "3",
        "seed": "1"})
    job = Job.objects.get()
    assert r.status_code == 302 and job.stage == "train" and job.mashupdb == "tr"
    assert job.arguments == {"db": "tr", "arch": "postmix", "lsro": True, "width": 0.25, "recipe": "pitch_band",
                             "epochs": 3, "seed": 1}  # blank patience and transposition: the stage's defaults


def test_the_train_form_keeps_a_patience_of_zero_and_a_transposition(staff):
    staff.post(reverse("workbench:launch", args=["train"]), {
        "db": "tr", "arch": "premix", "width": "0.125", "recipe": "pitch_band", "epochs": "3", "seed": "0",
        "patience": "0", "transpose_semitones": "6"})
    assert Job.objects.get().arguments == {"db": "tr", "arch": "premix", "width": 0.125, "recipe": "pitch_band",
                                           "epochs": 3, "seed": 0, "patience": 0, "transpose_semitones": 6.0}
    r = staff.post(reverse("workbench:launch", args=["train"]), {
        "db": "tr", "arch": "premix", "width": "0.125", "recipe": "pitch_band", "epochs": "3",
        "transpose_semitones": "13"})
    assert r.status_code == 200 and Job.objects.count() == 1  # out of range: the form again, no job


def test_each_epoch_is_appended_to_the_jobs_outputs(staff):
    job = Job.objects.create(stage="train", arguments={"db": "tr"})
    rep = jobs.JobReporter(job.pk)
    rep.epoch({"epoch": 1, "train_loss": 0.7, "val_loss": 0.69, "val_accuracy": 0.5})
    rep.epoch({"epoch": 2, "train_loss": 0.6, "val_loss": 0.65, "val_accuracy": 0.625})
    job.refresh_from_db()
    assert [h["epoch"] for h in job.outputs["history"]] == [1.0, 2.0]
    assert job.outputs["history"][1]["val_accuracy"] == 0.625
    snapshot = staff.get(reverse("workbench:job_json", args=[job.pk])).json()
    assert snapshot["outputs"]["history"][0]["train_loss"] == 0.7


def test_a_train_jobs_page_loads_plotly_and_others_do_not(staff):
    train = Job.objects.create(stage="train", arguments={"db": "tr"})
    render = Job.objects.create(stage="render", arguments={"db": "tr"})
    page = staff.get(reverse("workbench:job", args=[train.pk])).content.decode()
    assert 'id="curve"' in page and "/analysis/plotly-" in page
    assert 'id="curve"' not in staff.get(reverse("workbench:job", args=[render.pk])).content.decode()


def test_training_calls_on_epoch_once_per_epoch_and_the_job_keeps_the_curve(tmp_path):
    from scoring.training import train_model
    from tests.test_scoring_training import synthetic_candidates

    x, y, g = synthetic_candidates(n_seeds=10, seed=0)
    job = Job.objects.create(stage="train", arguments={"db": "tr"})
    rep = jobs.JobReporter(job.pk)
    result = train_model(arch="postmix", width=0.125, features=x[:24, :1], labels=y[:24], groups=g[:24], epochs=2,
                         seed=0, lsro=True, out_dir=tmp_path, batch_size=6, progress=False, on_epoch=rep.epoch)
    job.refresh_from_db()
    assert [h["epoch"] for h in job.outputs["history"]] == [1.0, 2.0] == [h["epoch"] for h in result.history]
    assert set(job.outputs["history"][0]) >= {"train_loss", "val_loss", "val_accuracy"}
