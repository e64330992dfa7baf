"""Models of the Django smoke suite: what Django schemas commonly declare (a case-insensitive
unique constraint, a unique constraint on live rows only, a check, an expression index, a stored
generated field, a JSON field and a foreign key)."""

from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower


class Author(models.Model):
    email = models.EmailField()
    name = models.CharField(max_length=100)
    deleted_at = models.DateTimeField(null=True, blank=True)
    meta = models.JSONField(default=dict)

    class Meta:
        app_label = "django_smoke"
        constraints = [
            models.UniqueConstraint(Lower("email"), name="author_email_ci"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(deleted_at__isnull=True), name="author_live_name"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="author_name_nonempty"),
        ]
        indexes = [models.Index(Lower("name"), name="author_lname_idx")]


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    qty = models.IntegerField(default=1)
    total = models.GeneratedField(
        expression=F("price") * F("qty"),
        output_field=models.DecimalField(max_digits=12, decimal_places=2),
        db_persist=True,
    )

    class Meta:
        app_label = "django_smoke"
