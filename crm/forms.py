"""Forms for the helpdesk pages. They collect input; the rules live in crm.tickets."""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from crm import access, tickets
from crm.models import Organization, Ticket, UserProfile


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Any number of files in one field (Django's documented recipe): a list, empty when none."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None) -> list:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(upload, initial) for upload in files]


class TicketCreateForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 6}))
    priority = forms.ChoiceField(label=_("Priority"), choices=Ticket.Priority.choices, initial="normal")
    organization = forms.ModelChoiceField(label=_("Organization"), queryset=Organization.objects.all())
    assigned_to = forms.ModelChoiceField(label=_("Assign to"), queryset=None, required=False)
    attachments = MultipleFileField(label=_("Attachments"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["attachments"].help_text = _("Optional; up to %(limit)s each.") % {
            "limit": filesizeformat(settings.ATTACHMENT_MAX_BYTES)
        }
        if access.is_staff_member(user):
            self.fields["assigned_to"].queryset = access.assignable_users()
        else:
            # Customers open tickets for their own organization and cannot assign them.
            del self.fields["organization"]
            del self.fields["assigned_to"]

    def clean_attachments(self) -> list:
        """Every file is checked before the ticket is created: a refused file creates nothing."""
        files = self.cleaned_data["attachments"]
        problems = []
        for upload in files:
            try:
                tickets.check_upload(upload)
            except ValidationError as error:
                problems += error.message_dict["file"]
        if problems:
            raise ValidationError(problems)
        return files


class TicketEditForm(forms.Form):
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(label=_("Description"), widget=forms.Textarea(attrs={"rows": 6}))
    priority = forms.ChoiceField(label=_("Priority"), choices=Ticket.Priority.choices)
    status = forms.ChoiceField(label=_("Status"), choices=Ticket.Status.choices)
    assigned_to = forms.ModelChoiceField(label=_("Assigned to"), queryset=None, required=False)
    resolution_notes = forms.CharField(
        label=_("Resolution notes"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("Required when the ticket is resolved."),
    )

    def __init__(self, *args, user, editable: set[str], **kwargs):
        super().__init__(*args, **kwargs)
        for name in list(self.fields):
            if name not in editable:
                del self.fields[name]
        if "assigned_to" in self.fields:
            self.fields["assigned_to"].queryset = access.assignable_users()


class CommentForm(forms.Form):
    body = forms.CharField(label=_("Comment"), widget=forms.Textarea(attrs={"rows": 3}))
    is_internal = forms.BooleanField(label=_("Internal note (agents only)"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        if not access.is_staff_member(user):
            del self.fields["is_internal"]


class AttachmentForm(forms.Form):
    file = forms.FileField(label=_("File"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].help_text = _("Up to %(limit)s.") % {
            "limit": filesizeformat(settings.ATTACHMENT_MAX_BYTES)
        }


class ProfileForm(forms.ModelForm):
    """What a person decides about the mail they get (customers may also watch their organization)."""

    class Meta:
        model = UserProfile
        fields = ["language", "email_notifications", "watches_organization"]
        labels = {"language": _("Language of my e-mail")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", _("the helpdesk's default")), *settings.LANGUAGES]
        if self.instance.role != UserProfile.Role.CUSTOMER:
            del self.fields["watches_organization"]  # agents hear about tickets as agents
