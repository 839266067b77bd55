from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("study/", include("listening.urls")),
    path("systems/", include("scoring.urls")),
    path("analysis/", include("analysis.urls")),
    path("work/", include("workbench.urls")),
    path("", include("generation.urls")),
]
