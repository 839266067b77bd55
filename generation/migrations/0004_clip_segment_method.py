"""Clip.segment_method, segment_score, gain_db: where in its source a clip was cut, why, and at what level (issue 11)."""

from django.db import migrations, models


def mark_annotated(apps, schema_editor):
    """Clips cut from Harmonix segments before this field existed carry a segment label."""
    Clip = apps.get_model("generation", "Clip")
    Clip.objects.exclude(segment_label="").update(segment_method="annotated")


class Migration(migrations.Migration):
    dependencies = [("generation", "0003_candidate_split")]

    operations = [
        migrations.AddField(
            model_name="clip",
            name="segment_method",
            field=models.CharField(
                default="start", max_length=16,
                help_text="How start_s was chosen: start (the file's start), auto (ingest --segment auto: the best "
                          "window by vocal activity, steady beat and loudness), annotated (a Harmonix segment)."),
        ),
        migrations.AddField(
            model_name="clip",
            name="segment_score",
            field=models.FloatField(blank=True, null=True,
                                    help_text="The auto choice's score (generation.segments), else empty."),
        ),
        migrations.AddField(
            model_name="clip",
            name="gain_db",
            field=models.FloatField(default=0.0, help_text="Level change from the source in dB (<= 0): a source "
                                    "decoded beyond full scale is scaled to fit integer FLAC storage."),
        ),
        migrations.RunPython(mark_annotated, migrations.RunPython.noop),
    ]
