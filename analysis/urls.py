from django.urls import path

from analysis import views

app_name = "analysis"
urlpatterns = [
    path("study/<int:pk>/", views.study_analysis, name="study"),
    path("study/<int:pk>/files/<str:name>", views.study_file, name="file"),
    path("study/<int:pk>/without-exclusions/<str:name>", views.study_file, {"without_exclusions": True},
         name="file_without_exclusions"),
    path("plotly-<str:version>.min.js", views.plotly_js, name="plotly"),
]
