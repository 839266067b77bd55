from django.urls import path

from workbench import rank_views, views

app_name = "workbench"
urlpatterns = [
    path("", views.job_list, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail, name="job"),
    path("jobs/<int:pk>.json", views.job_json, name="job_json"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="cancel"),
    path("jobs/<int:pk>/retry/", views.job_retry, name="retry"),
    path("db/new/", views.new_db, name="new_db"),
    path("db/<slug:name>/upload/", views.upload, name="upload"),
    path("db/<slug:name>/import/", views.import_folder, name="import"),
    path("launch/<slug:stage>/", views.launch, name="launch"),
    path("rank/<int:pk>/", rank_views.rank_result, name="rank_result"),
]
