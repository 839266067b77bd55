from django.urls import path, re_path

from listening import views

app_name = "listening"
urlpatterns = [
    path("", views.study_list, name="studies"),
    path("new/", views.new_study, name="new"),
    path("<int:pk>/", views.dashboard, name="dashboard"),
    path("<int:pk>/state/", views.set_state, name="state"),
    re_path(r"^(?P<pk>\d+)/design\.(?P<fmt>json|csv)$", views.design_export, name="design"),
    path("<int:pk>/ratings.csv", views.ratings_export, name="ratings"),
    path("<int:pk>/participants.csv", views.participants_export, name="participants"),
    path("s/<str:public_token>/", views.entry, name="entry"),
    path("p/<str:token>/", views.participant_home, name="participant"),
    path("p/<str:token>/questionnaire/", views.questionnaire, name="questionnaire"),
    path("p/<str:token>/screening/", views.screening_submit, name="screening"),
    path("p/<str:token>/screening/<int:trial>.wav", views.screening_sound, name="screening_sound"),
    path("p/<str:token>/page/<int:assignment_id>/", views.submit, name="submit"),
    path("p/<str:token>/page/<int:assignment_id>/answer/", views.answer, name="answer"),
    path("p/<str:token>/clip/<str:media_key>/<int:clip>", views.clip, name="clip"),
]
