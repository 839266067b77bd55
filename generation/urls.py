from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("", views.home, name="home"),
    path("db/<slug:name>/", views.db_detail, name="db"),
    path("db/<slug:name>/candidates/", views.candidates, name="candidates"),
    path("media/<path:relative>", views.media_file, name="media"),
]
