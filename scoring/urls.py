from django.urls import path

from scoring import views

app_name = "scoring"
urlpatterns = [
    path("", views.systems, name="systems"),
    path("<slug:name>/", views.ranking, name="ranking"),
]
